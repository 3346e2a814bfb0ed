# Changes a downlink makes to the config (interval, thresholds...), kept across power loss in
# overrides.json, which node.config applies over config.json at every boot.
import json
import os


def save_override(name, value, path="overrides.json"):
    """Write a new file, then rename it: a reset mid-write leaves the old one whole."""
    try:
        with open(path) as f:
            overrides = json.loads(f.read())
    except (OSError, ValueError):
        overrides = {}
    overrides[name] = value
    with open(path + ".new", "w") as f:
        f.write(json.dumps(overrides))
    os.rename(path + ".new", path)
