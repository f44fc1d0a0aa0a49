"""The largest token amount a request may name: far above any real balance, far below
bigint, so that sums and products of a few amounts (a hold, a fee on it) stay in the column."""

TOKENS_MAX = 10**15
