<?php
// Verify an APSDAI webhook (X-Apsdai-Token and X-Apsdai-Signature-256), standard library only.
// The same rules as receiver_demo/verify.py, with the same reasons. Copy this file; PHP 7.4+.
//
//   php apsdai_signature.php sign SECRET TIMESTAMP_MS [SECRET TIMESTAMP_MS ...]
//        prints the X-Apsdai-Token of each pair, one a line
//   php apsdai_signature.php verify MODE SECRET PREVIOUS_SECRET FILE...
//        FILE: a request as received (request line optional, headers, empty line, body); "-" is stdin.
//        Prints "ok" or "refused: REASON" a line per file; exits 1 if any was refused.
//        PREVIOUS_SECRET is "" unless the sender is rotating its secret. APSDAI_NOW_MS=... checks
//        the timestamp as of that moment instead of now (a request captured earlier).
//
// In a receiver: $v = apsdai_verify(getallheaders(), file_get_contents('php://input'), 'signature', $secret);
//
// Test vector: timestamp 1700000000000, secret "SECtest" -> aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D

// What Python's str.strip() removes, within the bytes a header can carry (trim()'s default
// differs: it keeps \x0c, \x1c-\x1f, \x85 and \xa0), so the verifiers agree to the byte.
const APSDAI_EDGE_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0";

/** The X-Apsdai-Token in signature mode: Base64 of HMAC-SHA256(secret, timestamp + "\n" + secret), URL-encoded once. */
function apsdai_token(string $secret, string $timestampMs): string
{
    $digest = hash_hmac('sha256', $timestampMs . "\n" . $secret, $secret, true);
    // Base64 uses only A-Z a-z 0-9 + / =; on those urlencode (and rawurlencode too) give exactly
    // Python's quote_plus (+ -> %2B, / -> %2F, = -> %3D). They differ on " " and "~", never in Base64.
    return urlencode(base64_encode($digest));
}

/** One X-Apsdai-Signature-256 entry: "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body). */
function apsdai_body_signature(string $secret, string $timestampMs, string $body): string
{
    return 'sha256=' . hash_hmac('sha256', $timestampMs . '.' . $body, $secret);
}

// 1-15 digits: epoch ms until the year 33658. \z, not $: $ would also accept a trailing newline.
function apsdai_is_timestamp(?string $value): bool
{
    return $value !== null && preg_match('/\A[0-9]{1,15}\z/', $value) === 1;
}

/**
 * Check one request. $headers: name => value, names in any casing (getallheaders()). $body: the raw
 * bytes received, or null not to check X-Apsdai-Signature-256. $previousSecret ('' if none): during a
 * rotation the old secret, accepted too. Returns ['ok' => bool, 'reason' => string ('' when ok)].
 * Secrets are UTF-8 strings; the comparisons take constant time (hash_equals).
 */
function apsdai_verify(array $headers, ?string $body, string $mode, string $secret, string $previousSecret = '',
                       int $toleranceS = 300, ?int $nowMs = null): array
{
    if ($mode !== 'signature' && $mode !== 'password') {
        throw new InvalidArgumentException("mode must be signature or password, not $mode");
    }
    if ($secret === '') {
        return ['ok' => false, 'reason' => 'no secret configured on the receiver'];  // '' would match ''
    }
    $secrets = $previousSecret === '' ? [$secret] : [$secret, $previousSecret];
    $headers = array_change_key_case($headers, CASE_LOWER);
    $token = (string) ($headers['x-apsdai-token'] ?? '');
    $timestamp = $headers['x-apsdai-timestamp'] ?? null;
    if ($token === '') {
        return ['ok' => false, 'reason' => 'missing X-Apsdai-Token header'];
    }

    if ($mode === 'password') {
        // The timestamp is not signed in this mode: its age proves nothing, only its format is checked.
        if ($timestamp !== null && !apsdai_is_timestamp($timestamp)) {
            return ['ok' => false, 'reason' => 'X-Apsdai-Timestamp is not epoch milliseconds (digits only)'];
        }
        // PHP gives a header's raw bytes; Python (and Java, Node) read them as ISO-8859-1 and compare
        // UTF-8: convert, so a password such as "pässword" compares the same way everywhere.
        $text = preg_replace_callback('/[\x80-\xff]/', fn ($m) => chr(0xC0 | ord($m[0]) >> 6) . chr(0x80 | (ord($m[0]) & 0x3F)), $token);
        foreach ($secrets as $s) {
            if (hash_equals($s, $text)) {
                return apsdai_verify_body($headers, $secrets, $timestamp, $body);
            }
        }
        return ['ok' => false, 'reason' => 'password does not match'];
    }
    if ($timestamp === null || $timestamp === '') {
        return ['ok' => false, 'reason' => 'missing X-Apsdai-Timestamp header'];
    }
    if (!apsdai_is_timestamp($timestamp)) {
        return ['ok' => false, 'reason' => 'X-Apsdai-Timestamp is not epoch milliseconds (digits only)'];
    }
    $now = $nowMs ?? (int) floor(microtime(true) * 1000);
    $skewMs = $now - (int) $timestamp;
    if (abs($skewMs) > $toleranceS * 1000) {
        $seconds = intdiv(abs($skewMs) + 999, 1000);  // round up: 300.2 s never reads as "300 s"
        $direction = $skewMs > 0 ? 'old' : 'in the future';
        return ['ok' => false, 'reason' => "timestamp is $seconds s $direction (tolerance $toleranceS s)"];
    }
    foreach ($secrets as $s) {
        if (hash_equals(apsdai_token($s, $timestamp), $token)) {
            return apsdai_verify_body($headers, $secrets, $timestamp, $body);
        }
    }
    return ['ok' => false, 'reason' => 'signature does not match: check the secret'];
}

function apsdai_verify_body(array $headers, array $secrets, ?string $timestamp, ?string $body): array
{
    $sent = $headers['x-apsdai-signature-256'] ?? null;
    if ($sent === null || $body === null) {
        return ['ok' => true, 'reason' => ''];  // the seed's senders do not sign the body
    }
    if (!apsdai_is_timestamp($timestamp)) {
        return ['ok' => false, 'reason' => 'X-Apsdai-Signature-256 needs X-Apsdai-Timestamp'];
    }
    // "sha256=<new>, sha256=<old>" during a rotation: any entry may match any of our secrets.
    foreach (explode(',', $sent) as $part) {
        foreach ($secrets as $s) {
            if (hash_equals(apsdai_body_signature($s, $timestamp, $body), trim($part, APSDAI_EDGE_SPACE))) {
                return ['ok' => true, 'reason' => ''];
            }
        }
    }
    return ['ok' => false, 'reason' => 'body signature does not match: the body was altered, or check the secret'];
}

// ---- the command line ----

/** Reads a request file: headers (repeated ones joined with ", ") and the body, byte for byte. */
function apsdai_verify_file(string $file, string $mode, string $secret, string $previousSecret, int $nowMs): array
{
    $raw = file_get_contents($file === '-' ? 'php://stdin' : $file);
    $crlf = strpos($raw, "\r\n\r\n");
    $lf = strpos($raw, "\n\n");
    if ($crlf !== false && ($lf === false || $crlf < $lf)) {
        [$head, $body] = [substr($raw, 0, $crlf), substr($raw, $crlf + 4)];
    } elseif ($lf !== false) {
        [$head, $body] = [substr($raw, 0, $lf), substr($raw, $lf + 2)];
    } else {
        [$head, $body] = [$raw, ''];
    }
    $headers = [];
    foreach (explode("\n", $head) as $line) {
        if (substr($line, -1) === "\r") {
            $line = substr($line, 0, -1);
        }
        $colon = strpos($line, ':');
        if (!$colon || strpos(substr($line, 0, $colon), ' ') !== false) {
            continue;  // the request line, or not a header
        }
        $name = strtolower(substr($line, 0, $colon));
        $value = trim(substr($line, $colon + 1), APSDAI_EDGE_SPACE);
        $headers[$name] = isset($headers[$name]) ? $headers[$name] . ', ' . $value : $value;
    }
    return apsdai_verify($headers, $body, $mode, $secret, $previousSecret, 300, $nowMs);
}

if (PHP_SAPI === 'cli' && realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    $args = array_slice($argv, 1);
    if (count($args) >= 3 && $args[0] === 'sign' && count($args) % 2 === 1) {
        for ($i = 1; $i < count($args); $i += 2) {
            echo apsdai_token($args[$i], $args[$i + 1]), "\n";
        }
        exit(0);
    }
    if (count($args) >= 5 && $args[0] === 'verify') {
        $now = getenv('APSDAI_NOW_MS');
        $nowMs = $now !== false && $now !== '' ? (int) $now : (int) floor(microtime(true) * 1000);
        $allOk = true;
        foreach (array_slice($args, 4) as $file) {
            $v = apsdai_verify_file($file, $args[1], $args[2], $args[3], $nowMs);
            echo $v['ok'] ? 'ok' : 'refused: ' . $v['reason'], "\n";
            $allOk = $allOk && $v['ok'];
        }
        exit($allOk ? 0 : 1);
    }
    fwrite(STDERR, "usage: sign SECRET TIMESTAMP_MS [SECRET TIMESTAMP_MS ...]\n"
        . "       verify signature|password SECRET PREVIOUS_SECRET FILE...\n");
    exit(2);
}
