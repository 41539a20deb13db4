// The peer of the backfill benchmark: what users write today to copy a DynamoDB table into
// Firestore with the official clients. The AWS SDK for JavaScript's parallel Scan (one loop per
// segment, all at once) feeds @google-cloud/firestore's BulkWriter; each item, unmarshalled to
// plain JS values, is set as the document its key names, in the collection named after the table.
// The BulkWriter's throttling (500 writes/s at first, +50% every 5 minutes) is off, as ddb2fs's
// ramp-up is in the benchmark.
//
// usage: node backfill.js ENDPOINT TABLE SEGMENTS PORT
//   ENDPOINT  DynamoDB's URL (DynamoDB Local); region and credentials from AWS_* variables
//   PORT      the Firestore emulator (or the test server) on 127.0.0.1:PORT
// Prints one JSON line on standard error, as ddb2fs prints its summary:
//   {"items": N, "seconds": S, "read_units": U, "failed": F}
// and exits 1 when a write failed for good.
'use strict';
const { DynamoDBClient, DescribeTableCommand, ScanCommand } = require('@aws-sdk/client-dynamodb');
const { unmarshall } = require('@aws-sdk/util-dynamodb');
const { emulatorFirestore } = require('./emulator');

const [endpoint, table, segmentsArg, portArg] = process.argv.slice(2);
const segments = Number(segmentsArg);
if (!endpoint || !table || !(segments >= 1) || !(Number(portArg) > 0)) {
  console.error('usage: node backfill.js ENDPOINT TABLE SEGMENTS PORT');
  process.exit(2);
}

const ddb = new DynamoDBClient({ endpoint });
const db = emulatorFirestore(Number(portArg));
const writer = db.bulkWriter({ throttling: false });
let items = 0, failed = 0, units = 0, firstError;

async function scanSegment(collection, keys, segment) {
  let start;
  do {
    const page = await ddb.send(new ScanCommand({
      TableName: table, Segment: segment, TotalSegments: segments, ExclusiveStartKey: start,
      ReturnConsumedCapacity: 'TOTAL',
    }));
    units += page.ConsumedCapacity ? page.ConsumedCapacity.CapacityUnits : 0;
    for (const av of page.Items) {
      const item = unmarshall(av);
      items++;
      // the write's promise settles when the BulkWriter is done with it (retries included)
      writer.set(collection.doc(keys.map((k) => String(item[k])).join('#')), item)
        .catch((e) => { failed++; firstError = firstError || e; });
    }
    start = page.LastEvaluatedKey;
  } while (start);
}

(async () => {
  const began = process.hrtime.bigint();
  const { Table } = await ddb.send(new DescribeTableCommand({ TableName: table }));
  const keys = Table.KeySchema.map((k) => k.AttributeName); // HASH, then RANGE
  const collection = db.collection(table);
  await Promise.all(Array.from({ length: segments }, (_, s) => scanSegment(collection, keys, s)));
  await writer.close();
  const seconds = Number(process.hrtime.bigint() - began) / 1e9;
  await db.terminate();
  ddb.destroy();
  console.error(JSON.stringify({ items, seconds, read_units: units, failed }));
  if (failed) {
    console.error(`${failed} writes failed, the first: ${firstError.message}`);
    process.exit(1);
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
