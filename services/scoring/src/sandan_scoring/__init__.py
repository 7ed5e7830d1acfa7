"""scoring: the points system (积分制), star ratings (星级评定) and quarterly notices (每季度通报公示).

The state is a fold of the event log: `fold.Ledger` applies facts read from the source topics, and every
report (`report.py`) is computed from that state, so a replay from the earliest offsets rebuilds it exactly.
"""
