// HitMe dashboard DOM helpers: creating elements and updating them in place.
//
// Every auto-refresh goes through these so that it changes only what changed: rebuilding
// the table or a chart every 5 seconds would drop a hovered tooltip, a focused link or a
// text selection, and restart any CSS transition.

const SVG_NS = "http://www.w3.org/2000/svg";

export const $ = (id) => document.getElementById(id);

/** A new element with `attrs`: HTML, or SVG when `svg` is set. */
export function make(tag, attrs = {}, svg = false) {
  const node = svg ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
  setAttrs(node, attrs);
  return node;
}

export const svg = (tag, attrs) => make(tag, attrs, true);

/** Sets attributes that differ; `null` removes one. */
export function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) {
      if (node.hasAttribute(name)) node.removeAttribute(name);
    } else {
      const text = value === true ? "" : String(value);
      if (node.getAttribute(name) !== text) node.setAttribute(name, text);
    }
  }
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/**
 * Makes `parent`'s children match `items`, in order, reusing the child whose data-key is
 * the item's key (so a row for a URL stays the same node across refreshes). `create`
 * builds a node for a new key; `update` brings a node up to date with its item.
 */
export function reconcile(parent, items, keyOf, create, update) {
  const old = new Map();
  for (const child of parent.children) old.set(child.dataset.key, child);
  let prev = null;
  items.forEach((item, index) => {
    const key = String(keyOf(item));
    let node = old.get(key);
    if (node) {
      old.delete(key);
    } else {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item, index);
    const expected = prev ? prev.nextElementSibling : parent.firstElementChild;
    if (node !== expected) parent.insertBefore(node, expected);
    prev = node;
  });
  for (const node of old.values()) node.remove();
}
