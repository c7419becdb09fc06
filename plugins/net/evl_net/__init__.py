"""``evl net``: manage the EVL out-of-band networking stack."""

__version__ = "0.1.0"

SUMMARY = "manage the EVL out-of-band networking stack"
