# The node's transports (wifi.py, lora.py) share these errors: a link that cannot carry a
# frame now raises one, and the runtime tries the next transport or keeps the frame queued.


class LinkDown(Exception):
    pass


class LinkBusy(LinkDown):
    """The link works but may not send yet (the duty cycle): the frame waits, no fault."""


class FrameTooLong(LinkDown):
    """This frame can never go over this link (longer than its data rate allows)."""
