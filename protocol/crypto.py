# AES-128 and the two modes built on it: AES-CMAC (RFC 4493) for integrity and AES-CTR
# (NIST SP 800-38A) for confidentiality. The block cipher is the only part that differs
# between runtimes: `cryptolib` (ECB) on MicroPython, `cryptography` on CPython.
try:
    import cryptolib

    def _ecb(key):
        return cryptolib.aes(key, 1).encrypt
except ImportError:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    def _ecb(key):
        return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update

from protocol.errors import ProtocolError

BLOCK = 16
_RB = 0x87  # RFC 4493 section 2.3: the constant for 128-bit blocks


class AES:
    """AES-128 block encryption with one key."""

    def __init__(self, key):
        if len(key) != 16:
            raise ProtocolError("crypto: AES-128 key must be 16 bytes, got %d" % len(key))
        self._encrypt = _ecb(bytes(key))

    def encrypt_block(self, block):
        return self._encrypt(bytes(block))


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def _double(block):
    # Multiply by x in GF(2^128): shift left one bit, fold the carry back with Rb.
    n = int.from_bytes(block, "big") << 1
    if n >> 128:
        n = (n ^ _RB) & ((1 << 128) - 1)
    return n.to_bytes(BLOCK, "big")


class CMAC:
    """AES-CMAC with one key; subkeys are derived once."""

    def __init__(self, key):
        self._aes = AES(key)
        l_block = self._aes.encrypt_block(bytes(BLOCK))
        self._k1 = _double(l_block)
        self._k2 = _double(self._k1)

    def digest(self, message):
        message = bytes(message)
        n = (len(message) + BLOCK - 1) // BLOCK
        if n and len(message) % BLOCK == 0:
            last = _xor(message[-BLOCK:], self._k1)
        else:
            n = max(n, 1)
            tail = message[(n - 1) * BLOCK:]
            padded = tail + b"\x80" + bytes(BLOCK - 1 - len(tail))
            last = _xor(padded, self._k2)
        x = bytes(BLOCK)
        encrypt = self._aes.encrypt_block
        for i in range(n - 1):
            x = encrypt(_xor(x, message[i * BLOCK:(i + 1) * BLOCK]))
        return encrypt(_xor(x, last))


def cmac(key, message):
    return CMAC(key).digest(message)


def ctr(key, initial_block, data):
    """AES-CTR: XOR data with E(K, T1), E(K, T2), ... where T1 = initial_block and each
    next counter block is the previous one plus one, as a 128-bit big-endian integer.
    key: 16 bytes, or an AES object made once for many calls."""
    if len(initial_block) != BLOCK:
        raise ProtocolError("crypto: CTR counter block must be 16 bytes")
    encrypt = (key if isinstance(key, AES) else AES(key)).encrypt_block
    counter = int.from_bytes(bytes(initial_block), "big")
    out = bytearray(len(data))
    for start in range(0, len(data), BLOCK):
        stream = encrypt(counter.to_bytes(BLOCK, "big"))
        for i in range(min(BLOCK, len(data) - start)):
            out[start + i] = data[start + i] ^ stream[i]
        counter = (counter + 1) & ((1 << 128) - 1)
    return bytes(out)
