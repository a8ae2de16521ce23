"""Client of the national medical-insurance mobile-payment centre (医保移动支付 2.0)."""
