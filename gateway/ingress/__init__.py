# Ingress adapters: each turns what it hears into gateway.uplink.Uplink records and hands
# them to the pipeline's submit(). Chosen from the config by gateway.app; no singletons.
import asyncio


async def cancel(task):
    """Cancel an ingress's task and wait until it has ended."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
