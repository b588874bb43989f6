import hashlib,os,sys
def r(n):
 b=b''
 while len(b)<n:
  c=os.read(0,n-len(b))
  if not c:sys.exit(70)
  b+=c
 return b
h=b''
while h[-1:]!=b'\n':h+=r(1)
s=r(int(h))
d=hashlib.sha256(s).hexdigest()
if d!='@RUNNER_SHA256@':sys.stderr.write('ptc bootstrap: runner hash mismatch\n');sys.exit(71)
exec(compile(s,'<ptc-runner>','exec'),{'__name__':'__ptc_runner__','RUNNER_SHA256':d})
