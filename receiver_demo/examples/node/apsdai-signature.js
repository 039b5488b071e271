#!/usr/bin/env node
// Verify an APSDAI webhook (X-Apsdai-Token and X-Apsdai-Signature-256), standard library only.
// The same rules as receiver_demo/verify.py, with the same reasons. Copy this file; Node 16+.
//
//   node apsdai-signature.js sign SECRET TIMESTAMP_MS [SECRET TIMESTAMP_MS ...]
//        prints the X-Apsdai-Token of each pair, one a line
//   node apsdai-signature.js verify MODE SECRET PREVIOUS_SECRET FILE...
//        FILE: a request as received (request line optional, headers, empty line, body); "-" is stdin.
//        Prints "ok" or "refused: REASON" a line per file; exits 1 if any was refused.
//        PREVIOUS_SECRET is "" unless the sender is rotating its secret. APSDAI_NOW_MS=... checks
//        the timestamp as of that moment instead of now (a request captured earlier).
//
// In a receiver: verify({headers: req.headers, body: rawBodyBuffer, mode: 'signature', secret})
//
// Test vector: timestamp 1700000000000, secret "SECtest" -> aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D
'use strict';
const crypto = require('crypto');
const fs = require('fs');

// 1-15 digits: epoch ms until the year 33658 (well inside Number's exact integers).
const TIMESTAMP = /^[0-9]{1,15}$/;
// What Python's str.strip() removes, within ISO-8859-1 (the characters a header can carry):
// String.prototype.trim differs on \x1c-\x1f and \x85, so the verifiers agree to the character.
const EDGE_SPACE = /^[ \t\n\r\x0b\x0c\x1c-\x1f\x85\xa0]+|[ \t\n\r\x0b\x0c\x1c-\x1f\x85\xa0]+$/g;

/** The X-Apsdai-Token in signature mode: Base64 of HMAC-SHA256(secret, timestamp + "\n" + secret), URL-encoded once. */
function token(secret, timestampMs) {
  const base64 = crypto.createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(Buffer.from(`${timestampMs}\n${secret}`, 'utf8')).digest('base64');
  // Base64 uses only A-Z a-z 0-9 + / =; on those encodeURIComponent gives exactly Python's
  // quote_plus (+ -> %2B, / -> %2F, = -> %3D). They differ on " " and "*", never in Base64.
  return encodeURIComponent(base64);
}

/** One X-Apsdai-Signature-256 entry: "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body). */
function bodySignature(secret, timestampMs, body) {
  return 'sha256=' + crypto.createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(Buffer.from(`${timestampMs}.`, 'ascii')).update(body).digest('hex');
}

// Constant time on the UTF-8 bytes, as Python's hmac.compare_digest (which also reveals the length).
// Header strings from Node's http are ISO-8859-1 decoded, as in Python's WSGI servers.
function same(a, b) {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

const refused = (reason) => ({ ok: false, reason });
const OK = Object.freeze({ ok: true, reason: '' });

/**
 * Check one request. headers: an object of name -> value, names in any casing (req.headers).
 * body: the raw bytes received (a Buffer), or null not to check X-Apsdai-Signature-256.
 * previousSecret ('' if none): during a rotation the old secret, accepted too.
 * Returns {ok, reason}; reason is '' when ok and never contains a secret.
 */
function verify({ headers, body = null, mode, secret, previousSecret = '', toleranceS = 300, nowMs = Date.now() }) {
  if (mode !== 'signature' && mode !== 'password') {
    throw new RangeError(`mode must be signature or password, not ${mode}`);
  }
  if (!secret) return refused('no secret configured on the receiver'); // '' would match ''
  const secrets = previousSecret ? [secret, previousSecret] : [secret];
  const lowered = {};
  for (const [name, value] of Object.entries(headers)) lowered[name.toLowerCase()] = value;
  const sentToken = lowered['x-apsdai-token'] || '';
  const timestamp = lowered['x-apsdai-timestamp'];
  if (!sentToken) return refused('missing X-Apsdai-Token header');

  if (mode === 'password') {
    // The timestamp is not signed in this mode: its age proves nothing, only its format is checked.
    if (timestamp !== undefined && !TIMESTAMP.test(timestamp)) {
      return refused('X-Apsdai-Timestamp is not epoch milliseconds (digits only)');
    }
    if (!secrets.some((s) => same(sentToken, s))) return refused('password does not match');
    return verifyBody(lowered, secrets, timestamp, body);
  }
  if (!timestamp) return refused('missing X-Apsdai-Timestamp header');
  if (!TIMESTAMP.test(timestamp)) return refused('X-Apsdai-Timestamp is not epoch milliseconds (digits only)');
  const skewMs = nowMs - Number(timestamp);
  if (Math.abs(skewMs) > toleranceS * 1000) {
    const seconds = Math.ceil(Math.abs(skewMs) / 1000); // round up: 300.2 s never reads as "300 s"
    const direction = skewMs > 0 ? 'old' : 'in the future';
    return refused(`timestamp is ${seconds} s ${direction} (tolerance ${toleranceS} s)`);
  }
  if (!secrets.some((s) => same(sentToken, token(s, timestamp)))) {
    return refused('signature does not match: check the secret');
  }
  return verifyBody(lowered, secrets, timestamp, body);
}

function verifyBody(lowered, secrets, timestamp, body) {
  const sent = lowered['x-apsdai-signature-256'];
  if (sent === undefined || body === null) return OK; // the seed's senders do not sign the body
  if (!timestamp || !TIMESTAMP.test(timestamp)) return refused('X-Apsdai-Signature-256 needs X-Apsdai-Timestamp');
  // "sha256=<new>, sha256=<old>" during a rotation: any entry may match any of our secrets.
  const parts = sent.split(',').map((part) => part.replace(EDGE_SPACE, ''));
  const expected = secrets.map((s) => bodySignature(s, timestamp, body));
  if (parts.some((part) => expected.some((e) => same(part, e)))) return OK;
  return refused('body signature does not match: the body was altered, or check the secret');
}

// ---- the command line ----

/** Reads a request file: headers (repeated ones joined with ", ") and the body, byte for byte. */
function verifyFile(file, mode, secret, previousSecret, nowMs) {
  const raw = fs.readFileSync(file === '-' ? 0 : file);
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
  const head = raw.subarray(0, end < 0 ? raw.length : end).toString('latin1'); // as HTTP servers decode headers
  const body = end < 0 ? Buffer.alloc(0) : raw.subarray(end + (end === crlf ? 4 : 2));
  const headers = {};
  for (let line of head.split('\n')) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const colon = line.indexOf(':');
    if (colon <= 0 || line.slice(0, colon).includes(' ')) continue; // the request line, or not a header
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).replace(EDGE_SPACE, '');
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return verify({ headers, body, mode, secret, previousSecret, toleranceS: 300, nowMs });
}

function main(args) {
  if (args.length >= 3 && args[0] === 'sign' && args.length % 2 === 1) {
    for (let i = 1; i < args.length; i += 2) console.log(token(args[i], args[i + 1]));
    return 0;
  }
  if (args.length >= 5 && args[0] === 'verify') {
    const nowMs = process.env.APSDAI_NOW_MS ? Number(process.env.APSDAI_NOW_MS) : Date.now();
    let allOk = true;
    for (const file of args.slice(4)) {
      const v = verifyFile(file, args[1], args[2], args[3], nowMs);
      console.log(v.ok ? 'ok' : `refused: ${v.reason}`);
      allOk = allOk && v.ok;
    }
    return allOk ? 0 : 1;
  }
  console.error('usage: sign SECRET TIMESTAMP_MS [SECRET TIMESTAMP_MS ...]\n'
    + '       verify signature|password SECRET PREVIOUS_SECRET FILE...');
  return 2;
}

module.exports = { token, bodySignature, verify };
if (require.main === module) process.exitCode = main(process.argv.slice(2));
