#!/usr/bin/env bash
# A synthetic recording of normal operation for `anomalyd eval --inject`: a compressor on
# a duty cycle, three channels at a 5-minute cadence, one cycle a day (on for 100 of 288
# readings). current and pressure step together at each edge; temperature follows the
# time of day and rises while the compressor runs. Gaussian noise, seeded, so the CSV is
# the same on every machine with the same awk. docs/quality.md, "Session 14".
#
# Usage: scripts/duty-cycle.sh [ROWS] > duty.csv   (default 6000 rows, about 21 days)
set -euo pipefail
rows="${1:-6000}"
awk -v rows="$rows" 'BEGIN {
  srand(7)
  pi = atan2(0, -1)
  print "timestamp,current,pressure,temperature"
  for (i = 0; i < rows; i++) {
    on = (i % 288) < 100
    current = (on ? 12.0 : 0.5) + gauss(0.2)
    pressure = (on ? 4.0 : 1.0) + 0.1 * current + gauss(0.05)
    temperature = 40 + 5 * sin(2 * pi * i / 288) + (on ? 3.0 : 0.0) + gauss(0.3)
    printf "%d,%.4f,%.4f,%.4f\n", 1600000000 + i * 300, current, pressure, temperature
  }
}
# Box-Muller: one normal draw of standard deviation sd.
function gauss(sd,    u, v) {
  u = rand(); v = rand()
  if (u < 1e-12) u = 1e-12
  return sd * sqrt(-2 * log(u)) * cos(2 * pi * v)
}'
