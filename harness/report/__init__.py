"""Reading result files into tables: comparisons with paired statistics, leaderboard, plots."""
