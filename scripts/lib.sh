# Shared helpers for HitMe's scripts; source it, don't run it.

# Prints a message to stderr.
say() { printf 'hitme: %s\n' "$*" >&2; }

# ensure_commands CMD:PACKAGE ... installs the Debian package of each missing command.
ensure_commands() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { say "missing: ${missing[*]}; install them (apt-get install ${missing[*]})"; exit 1; }
    sudo="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || { say "missing: ${missing[*]}; install them with your package manager"; exit 1; }
  say "installing ${missing[*]}"
  # Another apt run (a second script, an unattended upgrade) holds the lock: wait for it.
  local wait_lock=(-o DPkg::Lock::Timeout=300)
  if [ -z "${HITME_APT_UPDATED:-}" ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get "${wait_lock[@]}" update -qq
    HITME_APT_UPDATED=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get "${wait_lock[@]}" install -y -qq "${missing[@]}" >/dev/null
}

# Fails with a clear message when cargo is missing.
ensure_cargo() {
  command -v cargo >/dev/null 2>&1 && return 0
  [ -x "$HOME/.cargo/bin/cargo" ] && { export PATH="$HOME/.cargo/bin:$PATH"; return 0; }
  say "cargo not found: install Rust (https://rustup.rs) and run this again"
  exit 1
}
