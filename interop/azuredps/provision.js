#!/usr/bin/env node
// provision.js registers one device with Microsoft's Azure IoT DPS device
// SDK for Node.js (ProvisioningDeviceClient), unmodified, against a DPS
// endpoint such as Gatehouse, and prints what the SDK returned as one line
// of JSON on stdout:
//
//   {"ok":true,"result":{"registrationId":..,"assignedHub":..,"deviceId":..,"status":..,"substatus":..,"payload":..,...}}
//
// On failure it prints {"ok":false,"error":{"name","message","statusCode","retryAfter","body"}}
// on stdout, a human-readable line on stderr, and exits 1 (2 for bad usage).
//
// Arguments (each also as an environment variable, the flag wins):
//   --host H            DPS_HOST               the DPS endpoint's host name or IP address
//   --port N            DPS_PORT               its port (default 443 for http, 8883 for mqtt)
//   --scope S           DPS_ID_SCOPE           the ID scope (a Gatehouse scope)
//   --registration-id R DPS_REGISTRATION_ID
//   --transport T       DPS_TRANSPORT          http (default) or mqtt
//   --key K             DPS_SYMMETRIC_KEY      the device's symmetric key (base64)
//   --group-key K       DPS_GROUP_KEY          an enrollment group's key: the device key is derived
//                                              from it as Azure's documentation says
//   --cert FILE         DPS_CERT_FILE          X.509: the device certificate and its chain, PEM
//   --cert-key FILE     DPS_CERT_KEY_FILE      X.509: the device's private key, PEM
//   --payload JSON      DPS_PAYLOAD            custom payload sent with the registration
//   --poll              DPS_POLL=1             after the registration, also poll its operation
//
// --poll: the client never polls when the service answers the registration
// with its final state (Gatehouse does; Azure DPS answers 202 "assigning"
// and the client polls). To check the poll too, provision.js then makes the
// calls the SDK's polling state machine makes, on a fresh transport:
// registrationRequest, then queryOperationStatus with the operationId the
// answer carries. The output gains {"poll": {"operationId": the one the
// registration answered, "answer": {"operationId", "status",
// "registrationState"} as the poll answered}}.
//
// TLS: the server certificate is verified as always; make its root known
// with NODE_EXTRA_CA_CERTS (for Gatehouse, DATA/ca.pem).
//
// Ports. The SDK never takes a port of its own:
// - The MQTT transport connects to 'mqtts://' + provisioningHost (mqtt.js
//   parses the URL), so "host:port" as the provisioning host works.
// - The HTTP transport hands provisioningHost to https.request() as `host`,
//   which must be a bare name ("host:port" fails with ENOTFOUND), and
//   RestApiClient passes no port. It does accept an azure-iot-http-base Http
//   instance (the transport constructor's httpBase argument) whose
//   setOptions({http: {agent}}) agent is given to https.request(); Node takes
//   the port of a request that names none from agent.defaultPort. So the
//   port goes in through an https.Agent whose defaultPort is set.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const https = require('https');

const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http: HttpTransport } = require('azure-iot-provisioning-device-http');
const { Mqtt: MqttTransport } = require('azure-iot-provisioning-device-mqtt');
const { Http: HttpBase } = require('azure-iot-http-base');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');

const options = {
  host: 'DPS_HOST',
  port: 'DPS_PORT',
  scope: 'DPS_ID_SCOPE',
  'registration-id': 'DPS_REGISTRATION_ID',
  transport: 'DPS_TRANSPORT',
  key: 'DPS_SYMMETRIC_KEY',
  'group-key': 'DPS_GROUP_KEY',
  cert: 'DPS_CERT_FILE',
  'cert-key': 'DPS_CERT_KEY_FILE',
  payload: 'DPS_PAYLOAD',
  poll: 'DPS_POLL',
};

const booleans = new Set(['poll']);

function usage(msg) {
  process.stderr.write('provision.js: ' + msg + '\n');
  process.exit(2);
}

function parseArgs(argv) {
  const cfg = {};
  for (const [name, env] of Object.entries(options)) {
    if (process.env[env]) cfg[name] = process.env[env];
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) usage('unexpected argument ' + a);
    let name = a.slice(2);
    let value;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else if (booleans.has(name)) {
      value = '1';
    } else {
      if (i + 1 >= argv.length) usage('--' + name + ' needs a value');
      value = argv[++i];
    }
    if (!(name in options)) usage('unknown flag --' + name);
    cfg[name] = value;
  }
  cfg.transport = cfg.transport || 'http';
  for (const req of ['host', 'scope', 'registration-id']) {
    if (!cfg[req]) usage('--' + req + ' (or ' + options[req] + ') is required');
  }
  const creds = ['key', 'group-key', 'cert'].filter((k) => cfg[k]);
  if (creds.length !== 1) usage('give exactly one of --key, --group-key, --cert');
  if (cfg.cert && !cfg['cert-key']) usage('--cert needs --cert-key');
  if (cfg.transport !== 'http' && cfg.transport !== 'mqtt') usage('--transport must be http or mqtt');
  if (cfg.port && !/^[0-9]+$/.test(cfg.port)) usage('--port must be a number');
  return cfg;
}

// deriveDeviceKey is the group key derivation from Azure's documentation
// ("Derive a device key"): base64(HMAC-SHA256(base64decode(groupKey), registrationId)).
function deriveDeviceKey(groupKey, registrationId) {
  return crypto.createHmac('SHA256', Buffer.from(groupKey, 'base64')).update(registrationId, 'utf8').digest('base64');
}

function transportFor(cfg) {
  if (cfg.transport === 'mqtt') {
    const host = cfg.port ? cfg.host + ':' + cfg.port : cfg.host;
    return { host, transport: new MqttTransport() };
  }
  const base = new HttpBase();
  if (cfg.port) {
    const agent = new https.Agent({ keepAlive: false });
    agent.defaultPort = Number(cfg.port);
    base.setOptions({ http: { agent } });
  }
  return { host: cfg.host, transport: new HttpTransport(base) };
}

function securityFor(cfg) {
  const id = cfg['registration-id'];
  if (cfg.cert) {
    return new X509Security(id, { cert: fs.readFileSync(cfg.cert, 'utf8'), key: fs.readFileSync(cfg['cert-key'], 'utf8') });
  }
  const key = cfg.key || deriveDeviceKey(cfg['group-key'], id);
  return new SymmetricKeySecurityClient(id, key);
}

// poll registers again and polls the operation through the transport's
// own calls, as the SDK's polling state machine does when the service
// answers "assigning".
function poll(cfg) {
  const { host, transport } = transportFor(cfg);
  const request = { registrationId: cfg['registration-id'], provisioningHost: host, idScope: cfg.scope };
  return new Promise((resolve, reject) => {
    const finish = (err, value) => transport.disconnect(() => (err ? reject(err) : resolve(value)));
    const start = () => transport.registrationRequest(request, (err, result) => {
      if (err) return finish(err);
      if (!result || !result.operationId) return finish(new Error('the registration answer has no operationId: ' + JSON.stringify(result)));
      transport.queryOperationStatus(request, result.operationId, (err2, status) => {
        if (err2) return finish(err2);
        finish(null, { registered: result, polled: status });
      });
    });
    const security = securityFor(cfg);
    if (cfg.cert) {
      security.getCertificate((err, cert) => {
        if (err) return reject(err);
        transport.setAuthentication(cert);
        start();
      });
    } else {
      security.createSharedAccessSignature(cfg.scope, (err, sas) => {
        if (err) return reject(err);
        transport.setSharedAccessSignature(sas.toString());
        start();
      });
    }
  });
}

// describe turns what the SDK failed with into plain JSON: its error class
// (UnauthorizedError, ...), message, and the service's status and body when
// the error came from an answer (HTTP: err.response/responseBody; MQTT:
// err.transportObject.topic/payload).
function describe(err) {
  const out = { name: (err && (err.name || (err.constructor && err.constructor.name))) || 'Error', message: String((err && err.message) || err) };
  if (err && err.response && typeof err.response.statusCode === 'number') {
    out.statusCode = err.response.statusCode;
    if (err.response.headers && err.response.headers['retry-after']) out.retryAfter = err.response.headers['retry-after'];
  }
  if (err && typeof err.responseBody === 'string') {
    try { out.body = JSON.parse(err.responseBody); } catch (e) { out.body = err.responseBody; }
  }
  const t = err && err.transportObject;
  if (t && typeof t.topic === 'string') {
    const m = t.topic.match(/^\$dps\/registrations\/res\/([0-9]+)\//);
    if (m) out.statusCode = Number(m[1]);
    out.body = t.payload;
  }
  if (err && typeof err.code !== 'undefined') out.code = err.code;
  return out;
}

async function main() {
  const cfg = parseArgs(process.argv.slice(2));
  const { host, transport } = transportFor(cfg);
  const client = ProvisioningDeviceClient.create(host, cfg.scope, transport, securityFor(cfg));
  if (cfg.payload) client.setProvisioningPayload(JSON.parse(cfg.payload));
  try {
    // The registration state as the SDK hands it to the application
    // (assignedHub, deviceId, status, substatus, payload, ...), whole.
    const result = await client.register();
    const out = { ok: true, result };
    if (cfg.poll) {
      const p = await poll(cfg);
      out.poll = { operationId: p.registered.operationId, answer: p.polled };
    }
    process.stdout.write(JSON.stringify(out) + '\n');
    return 0;
  } catch (err) {
    const e = describe(err);
    process.stdout.write(JSON.stringify({ ok: false, error: e }) + '\n');
    process.stderr.write('provision.js: registration failed: ' + e.name + ': ' + e.message + '\n');
    return 1;
  }
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write('provision.js: ' + (err && err.stack || err) + '\n');
  process.exit(1);
});
