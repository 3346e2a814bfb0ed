import time

woke_ms = time.ticks_ms()  # the cycle's awake time counts from here, before any import

try:
    open("bridge.json").close()  # its config makes the board a LoRa serial bridge
    is_bridge = True
except OSError:
    is_bridge = False

if is_bridge:
    from node import bridge  # noqa: E402
    bridge.main()
else:
    from node import runtime  # noqa: E402
    runtime.main(woke_ms)
