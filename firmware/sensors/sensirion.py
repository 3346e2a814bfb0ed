# The CRC-8 that every Sensirion chip (SCD4x, SHT4x) puts after each 16-bit word.


def crc8(data, start=0, end=2):
    """Sensirion CRC-8 over data[start:end]: polynomial 0x31, init 0xFF, no reflection, no
    final XOR; CRC(0xBEEF) = 0x92 (SCD4x datasheet 3.11, SHT4x datasheet 4.4)."""
    crc = 0xFF
    for i in range(start, end):
        crc ^= data[i]
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc
