import time

woke_ms = time.ticks_ms()  # the cycle's awake time counts from here, before any import

from node import runtime  # noqa: E402

runtime.main(woke_ms)
