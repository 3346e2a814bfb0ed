# Runs first at every start of the node. Nothing here may fail or block: main.py does the
# work, inside the watchdog.
