// An independent implementation of the sealed key file, written from the README's
// "Sealed key file" section with the libsodium-wrappers binding:
//   node sealed_key.js seal KEY_FILE SEALED_FILE   prints the data key (base64)
//   node sealed_key.js open SEALED_FILE DATA_KEY   prints the key file
'use strict';
const fs = require('fs');
const sodium = require('libsodium-wrappers');

const MAGIC = Buffer.from('D2FKEY', 'ascii');
const VERSION = 1;
const XCHACHA20POLY1305 = 1;

function header() {
  return Buffer.concat([MAGIC, Buffer.from([VERSION, XCHACHA20POLY1305])]);
}

function seal(keyFile, sealedFile) {
  const plain = fs.readFileSync(keyFile);
  const key = sodium.crypto_aead_xchacha20poly1305_ietf_keygen();
  const nonce = sodium.randombytes_buf(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  const h = header();
  const sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, h, null, nonce, key);
  fs.writeFileSync(sealedFile, Buffer.concat([h, Buffer.from(nonce), Buffer.from(sealed)]),
                   {mode: 0o600});
  process.stdout.write(Buffer.from(key).toString('base64') + '\n');
}

function open(sealedFile, dataKey) {
  const s = fs.readFileSync(sealedFile);
  const h = s.subarray(0, 8);
  if (!h.equals(header())) throw new Error('not a version 1 XChaCha20-Poly1305 sealed key');
  const nonce = s.subarray(8, 32);
  const key = Buffer.from(dataKey, 'base64');
  const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, s.subarray(32), h,
                                                                  nonce, key);
  process.stdout.write(Buffer.from(plain));
}

sodium.ready.then(() => {
  const [cmd, a, b] = process.argv.slice(2);
  if (cmd === 'seal') seal(a, b);
  else if (cmd === 'open') open(a, b);
  else throw new Error('usage: sealed_key.js seal KEY_FILE SEALED | open SEALED DATA_KEY');
});
