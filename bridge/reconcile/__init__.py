"""Daily reconciliation: the hospital's order book against the platforms' statements and the
channels' bills (docs/reconciliation.md).

    model       classes, legs, and the decisions (which class an order's leg is in)
    settings    what a site configures
    days        China days and their UTC bounds
    runs        mi_recon_run / mi_recon_item / mi_channel_bill: a run's life and its results
    hospital    the HIS side: the order book's movements of a day
    offline     face-pay and kiosk settlements: 3201, then 9101 / 3202 / 9102
    channels    the WeChat and Alipay bills, downloaded and loaded
    mobilepay   mobile-pay orders against the centre (6301) and the channels' bills
    report      the summary and the HIS's inbox rows of type `reconciliation`
    runner      one run for a day and a platform, start to end
"""
