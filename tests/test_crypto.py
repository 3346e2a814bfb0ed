"""protocol/crypto.py on both runtimes: FIPS-197, RFC 4493 (AES-CMAC) and NIST SP 800-38A
(AES-CTR) vectors, and property tests against the `cryptography` package."""
import pytest
from cryptography.hazmat.primitives import cmac as ref_cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import crypto
from protocol.errors import ProtocolError

RFC4493_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
RFC4493_MESSAGE = ("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                   "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
# RFC 4493 section 4: (message length, MAC)
RFC4493 = [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
]


def test_aes128_encrypts_the_fips197_example_block(runtime):
    aes = runtime.call("protocol.crypto.AES", bytes(range(16)))
    out = runtime.method(aes, "encrypt_block", bytes.fromhex("00112233445566778899aabbccddeeff"))
    assert out.hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"


@pytest.mark.parametrize("length, mac", RFC4493, ids=[str(n) for n, _ in RFC4493])
def test_cmac_matches_rfc4493(runtime, length, mac):
    message = bytes.fromhex(RFC4493_MESSAGE)[:length]
    assert runtime.call("protocol.crypto.cmac", bytes.fromhex(RFC4493_KEY), message).hex() == mac


def test_ctr_matches_nist_sp800_38a_f51(runtime):
    counter = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    out = runtime.call("protocol.crypto.ctr", bytes.fromhex(RFC4493_KEY), counter,
                       bytes.fromhex(RFC4493_MESSAGE))
    assert out.hex() == ("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
                         "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee")


def test_ctr_counter_carries_across_all_128_bits(runtime):
    key = bytes(16)
    top = b"\xff" * 16
    out = runtime.call("protocol.crypto.ctr", key, top, bytes(32))
    encrypt = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update
    assert out == encrypt(top) + encrypt(bytes(16))


@pytest.mark.parametrize("length", [0, 15, 17, 32])
def test_a_key_that_is_not_16_bytes_is_refused(runtime, length):
    with pytest.raises(ProtocolError, match="16 bytes"):
        runtime.call("protocol.crypto.AES", bytes(length))


@settings(max_examples=300)
@given(key=st.binary(min_size=16, max_size=16), message=st.binary(max_size=100))
def test_cmac_agrees_with_cryptography(key, message):
    reference = ref_cmac.CMAC(algorithms.AES(key))
    reference.update(message)
    assert crypto.cmac(key, message) == reference.finalize()


@settings(max_examples=300)
@given(key=st.binary(min_size=16, max_size=16), counter=st.binary(min_size=16, max_size=16),
       data=st.binary(max_size=100))
def test_ctr_agrees_with_cryptography(key, counter, data):
    reference = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor().update(data)
    assert crypto.ctr(key, counter, data) == reference


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(key=st.binary(min_size=16, max_size=16), message=st.binary(max_size=80))
def test_both_runtimes_compute_the_same_cmac_and_ctr(micropython, key, message):
    assert micropython.call("protocol.crypto.cmac", key, message) == crypto.cmac(key, message)
    counter = bytes(15) + b"\x01"
    assert (micropython.call("protocol.crypto.ctr", key, counter, message)
            == crypto.ctr(key, counter, message))
