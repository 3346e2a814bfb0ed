# Ingress adapters: each turns what it hears into gateway.uplink.Uplink records and hands
# them to the pipeline's submit(). Chosen from the config by gateway.app; no singletons.
