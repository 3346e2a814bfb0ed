# Forwarders: each reads the outbox from its own cursor, sends to its next hop and moves the
# cursor only after the next hop confirmed. Chosen from the config by gateway.app.
