"""Writes a new Solana keypair file (64-byte JSON array: ed25519 seed, then public key) to
argv[1] and prints the wallet (base58 public key). No third-party packages."""
import json, os, sys, hashlib
# Derive the ed25519 public key without third-party packages (RFC 8032 reference arithmetic).
p = 2**255 - 19; d = -121665 * pow(121666, p - 2, p) % p; q = 2**252 + 27742317777372353535851937790883648493
def inv(x): return pow(x, p - 2, p)
def add(P, Q):
    (x1, y1), (x2, y2) = P, Q
    x3 = (x1*y2 + x2*y1) * inv(1 + d*x1*x2*y1*y2) % p
    y3 = (y1*y2 + x1*x2) * inv(1 - d*x1*x2*y1*y2) % p
    return (x3, y3)
def mul(s, P):
    R = (0, 1)
    while s:
        if s & 1: R = add(R, P)
        P = add(P, P); s >>= 1
    return R
gy = 4 * inv(5) % p
gx2 = (gy*gy - 1) * inv(d*gy*gy + 1) % p
gx = pow(gx2, (p + 3) // 8, p)
if (gx*gx - gx2) % p: gx = gx * pow(2, (p - 1) // 4, p) % p
if gx & 1: gx = p - gx
seed = os.urandom(32)
h = hashlib.sha512(seed).digest()
a = int.from_bytes(h[:32], 'little'); a &= (1 << 254) - 8; a |= 1 << 254
x, y = mul(a, (gx, gy))
pub = (y | ((x & 1) << 255)).to_bytes(32, 'little')
json.dump(list(seed + pub), open(sys.argv[1], 'w'))

alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
n = int.from_bytes(pub, "big"); out = ""
while n: n, r = divmod(n, 58); out = alphabet[r] + out
print("1" * (len(pub) - len(pub.lstrip(b"\0"))) + out)
