"""ymds: YooMoney payments for personal wallets and Telegram bots."""
__version__ = "0.1.0"
