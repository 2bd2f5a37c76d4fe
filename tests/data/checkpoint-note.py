# Generates tests/data/checkpoint-note.json from the C2SP specifications alone (Python
# `cryptography`), independently of authledger: python3 tests/data/checkpoint-note.py
import json, hashlib, base64, struct
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
def pub(sk): return sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
b64=lambda b: base64.b64encode(b).decode()
log_seed=bytes(range(32)); w_seed=bytes(range(32,64))
log=Ed25519PrivateKey.from_private_bytes(log_seed); w=Ed25519PrivateKey.from_private_bytes(w_seed)
origin="authledger/01900000-0000-7000-8000-000000000001"
root=hashlib.sha256(b"authledger checkpoint vector").digest()
size=1234
body="%s\n%d\n%s\n" % (origin, size, b64(root))
kid=hashlib.sha256(origin.encode()+b"\n\x01"+pub(log)).digest()[:4]
sig=log.sign(body.encode())
DASH="\u2014 "
line=DASH+origin+" "+b64(kid+sig)+"\n"
note=body+"\n"+line
wname="witness.example/w1"
wkid=hashlib.sha256(wname.encode()+b"\n\x04"+pub(w)).digest()[:4]
vkey=wname+"+"+wkid.hex()+"+"+b64(b"\x04"+pub(w))
ts=1767323045
msg=("cosignature/v1\ntime %d\n" % ts).encode()+body.encode()
wsig=w.sign(msg)
cos=wkid+struct.pack(">Q",ts)+wsig
cosigned=note+DASH+wname+" "+b64(cos)+"\n"
v={
 "description":"One checkpoint as a C2SP signed note (schemas/README.md §7c) and one witness cosignature (C2SP tlog-cosignature, cosignature/v1). Ed25519 is deterministic: an implementation must reproduce every string exactly. Generated independently of authledger (Python `cryptography`).",
 "log_key":{"seed_hex":log_seed.hex(),"public_key":b64(pub(log)),"key_name":origin,"key_id_hex":kid.hex()},
 "checkpoint":{"origin":origin,"tree_size":size,"root_hex":root.hex(),"body":body},
 "note":note,
 "witness":{"seed_hex":w_seed.hex(),"name":wname,"public_key":b64(pub(w)),"key_id_hex":wkid.hex(),"vkey":vkey,"timestamp":ts,"signed_message":msg.decode(),"cosignature":b64(cos),"cosigned_note":cosigned},
 "invalid_notes":[
   {"why":"tree size changed after signing","note":note.replace("\n%d\n"%size,"\n%d\n"%(size+1))},
   {"why":"signature under another key name","note":body+"\n"+DASH+"authledger/other "+b64(kid+sig)+"\n"},
   {"why":"no blank line before the signatures","note":body+line},
   {"why":"hyphen instead of em dash","note":body+"\n"+"- "+origin+" "+b64(kid+sig)+"\n"},
 ]
}
open("tests/data/checkpoint-note.json","w").write(json.dumps(v,indent=2,ensure_ascii=False)+"\n")
print(cosigned)
