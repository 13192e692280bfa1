"""The decision: pure functions over arrays (statistics, rules, calibration, attribution, wording). No I/O, no torch."""
