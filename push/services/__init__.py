"""Every write of the push app: config, devices, sends, deliveries and receipts."""
