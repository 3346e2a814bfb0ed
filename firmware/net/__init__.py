# The node's transports (wifi.py, lora.py) share this error: a link that cannot carry a
# frame now raises it, and the runtime tries the next transport or keeps the frame queued.


class LinkDown(Exception):
    pass
