# The original HitMe's plot.p, for scripts/bench --seed-ab: one line per ab -g file (one
# per body file, ab_data0..2), x = request, y = its total time in ms. ab writes the -g
# file sorted by total time, so each line rises from the fastest request to the slowest.
# Column 9 is ab's ttime: gnuplot splits on whitespace, and the starttime column
# ("Fri Nov 28 04:45:00 2025") is five words, so the tab-separated columns
# starttime seconds ctime dtime ttime wait are gnuplot's 1-5, 6, 7, 8, 9, 10.
#
# gnuplot -e "n='3'; f1='data0.dat'; t1='ab_data0'; f2='data1.dat'; t2='ab_data1'; \
#             f3='data2.dat'; t3='ab_data2'; out='plot.png'" bench/seed-plot.gp
# Optional: plottitle='...' and ymax='MS' (a y range shared by several graphs).
set terminal png size 1100,650 noenhanced
set output out
if (!exists("plottitle")) plottitle = "ab -g: response time of each request"
set title plottitle
set size 1,1
set grid y
set key left top
set xlabel "request"
set ylabel "response time (ms)"
if (exists("ymax") && ymax + 0 > 0) set yrange [0:(ymax + 0) * 1.05]; else set yrange [0:*]
plot for [i=1:int(n + 0)] value(sprintf("f%d", i)) using 9 smooth sbezier with lines lw 2 \
     title value(sprintf("t%d", i))
