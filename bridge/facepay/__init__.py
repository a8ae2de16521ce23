"""Guangdong real-account one-stop face-pay extension (医保码实账一站式结算)."""
