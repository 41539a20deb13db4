// The peer ddb2fs is measured against: what a Node.js Lambda handler on a DynamoDB stream
// usually does, with Google's official @google-cloud/firestore client: each batch of records
// written straight to Firestore (one batched write per invocation), nothing kept in between.
//
// usage: node handler.js PORT EVENT.json…   (the Firestore emulator on 127.0.0.1:PORT)
'use strict';
const fs = require('fs');
const { emulatorFirestore } = require('./emulator');

const db = emulatorFirestore(Number(process.argv[2]));

// DynamoDB AttributeValue -> plain value, as handlers usually unmarshall
function value(av) {
  const [type, v] = Object.entries(av)[0];
  switch (type) {
    case 'S': return v;
    case 'N': return Number(v);
    case 'B': return Buffer.from(v, 'base64');
    case 'BOOL': return v;
    case 'NULL': return null;
    case 'M': return item(v);
    case 'L': return v.map(value);
    case 'SS': return [...v];
    case 'NS': return v.map(Number);
    case 'BS': return v.map((b) => Buffer.from(b, 'base64'));
    default: throw new Error('unknown type ' + type);
  }
}
function item(m) {
  const out = {};
  for (const [k, v] of Object.entries(m)) out[k] = value(v);
  return out;
}

async function handle(event) {
  const batch = db.batch();
  for (const r of event.Records) {
    const table = r.eventSourceARN.split(':table/')[1].split('/stream/')[0];
    const k = r.dynamodb.Keys;
    const ref = db.collection(table).doc(`${k.customer.S}#${k.order.N}`);
    if (r.eventName === 'REMOVE') batch.delete(ref);
    else batch.set(ref, item(r.dynamodb.NewImage));
  }
  await batch.commit();
}

(async () => {
  for (const file of process.argv.slice(3)) await handle(JSON.parse(fs.readFileSync(file)));
  await db.terminate();
})().catch((e) => { console.error(e.message); process.exit(1); });
