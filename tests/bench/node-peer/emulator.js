// The Firestore client both peers use: Google's official client on the emulator (or the test
// server) at 127.0.0.1:PORT, over REST, with the emulator's "owner" token and no Google
// credentials looked for.
'use strict';
const { Firestore } = require('@google-cloud/firestore');

function emulatorFirestore(port) {
  return new Firestore({
    projectId: 'demo-project', host: '127.0.0.1', port, ssl: false, preferRest: true,
    customHeaders: { Authorization: 'Bearer owner' },
    authClient: {
      getRequestHeaders: async () => ({ Authorization: 'Bearer owner' }),
      getClient: async function () { return this; },
      getProjectId: async () => 'demo-project',
      getUniverseDomain: async () => 'googleapis.com',
      universeDomain: 'googleapis.com',
    },
  });
}

module.exports = { emulatorFirestore };
