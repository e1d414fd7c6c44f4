# Requests per second against ab concurrency (log x axis), one line per target: where each
# server tops out and whether it falls over as clients pile up.
#
# gnuplot -e "dir='DIR'; targets='hitme nginx'; levels='64 256 1024'; out='DIR/rps.png'" rps.gp
# reads DIR/rps-<target>.dat: "concurrency median_req_per_s" per line (benchkit.py).
set terminal pngcairo size 1100,650 noenhanced
set output out
set title "POST /hit: requests per second (median) against concurrency, ab -r"
set xlabel "concurrency (ab -c, log scale)"
set ylabel "requests per second"
set logscale x 2
set xtics ()
do for [l in levels] { set xtics add (l int(l)) }
# A little room either side of the lowest and highest level.
set xrange [(word(levels, 1) + 0) / 1.3 : (word(levels, words(levels)) + 0) * 1.3]
set yrange [0:*]
set grid xtics ytics
set key right top
plot for [t in targets] sprintf("%s/rps-%s.dat", dir, t) using 1:2 with linespoints lw 2 pt 7 title t
