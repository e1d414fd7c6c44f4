# Response time of every request at one ab concurrency, one line per target: the original
# HitMe recipe (ab -g file.tsv, then plot ttime), with each target's requests sorted by
# total time so the lines are comparable percentile curves.
#
# gnuplot -e "dir='DIR'; targets='hitme nginx'; c='1024'; out='DIR/latency-c1024.png'" latency.gp
# reads DIR/latency-<target>.dat: one total time (ms) per line, sorted (written by benchkit.py).
set terminal pngcairo size 1100,650 noenhanced
set output out
set title sprintf("POST /hit: response time of each request, ab -c %s (sorted by time)", c)
set xlabel "request (sorted by response time)"
set ylabel "total time (ms)"
set grid xtics ytics
set key left top
plot for [t in targets] sprintf("%s/latency-%s.dat", dir, t) using 0:1 with lines lw 2 title t
