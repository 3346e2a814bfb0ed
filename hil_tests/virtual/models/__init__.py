"""Device models for the virtual board, each written from its chip's datasheet, never from
our drivers. A model names the bus keys it answers for and reacts to bus operations at the
virtual time it is given; a `scenario` callable gives the world's state at that time."""


class Model:
    board = None
    fault = None  # a model-specific fault name, or None for a healthy chip

    def bus_keys(self):
        raise NotImplementedError

    def answers(self, vt):
        return self.fault != "nack"


def sensirion_crc8(data):
    """The CRC-8 Sensirion chips put after each 16-bit word: polynomial 0x31, init 0xFF."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc
