// Verify an APSDAI webhook (X-Apsdai-Token and X-Apsdai-Signature-256), standard library only.
// The same rules as receiver_demo/verify.py, with the same reasons. Copy this file; Java 17+.
//
//   java ApsdaiSignature.java sign SECRET TIMESTAMP_MS [SECRET TIMESTAMP_MS ...]
//        prints the X-Apsdai-Token of each pair, one a line
//   java ApsdaiSignature.java verify MODE SECRET PREVIOUS_SECRET FILE...
//        FILE: a request as received (request line optional, headers, empty line, body); "-" is stdin.
//        Prints "ok" or "refused: REASON" a line per file; exits 1 if any was refused.
//        PREVIOUS_SECRET is "" unless the sender is rotating its secret. APSDAI_NOW_MS=... checks
//        the timestamp as of that moment instead of now (a request captured earlier).
// Run it in a UTF-8 locale (LANG=C.UTF-8): Java decodes its arguments, the secret, by the locale.
//
// Test vector: timestamp 1700000000000, secret "SECtest" -> aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Pattern;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class ApsdaiSignature {
    // 1-15 digits: epoch ms until the year 33658 (fits a long).
    private static final Pattern TIMESTAMP = Pattern.compile("[0-9]{1,15}");

    // What Python's str.strip() removes, within ISO-8859-1 (the characters a header can carry):
    // String.strip() differs on \u0085 and \u00a0, so the verifiers agree to the character.
    private static final Pattern EDGE_SPACE = Pattern.compile("^[ \\t\\n\\r\\x0b\\x0c\\x1c-\\x1f\\x85\\xa0]+|[ \\t\\n\\r\\x0b\\x0c\\x1c-\\x1f\\x85\\xa0]+$");

    private static String strip(String s) {
        return EDGE_SPACE.matcher(s).replaceAll("");
    }

    public record Verification(boolean ok, String reason) {}  // reason is "" when ok

    private static byte[] hmacSha256(String secret, byte[] message) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            return mac.doFinal(message);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);  // every Java has HmacSHA256
        }
    }

    /** The X-Apsdai-Token in signature mode: Base64 of HMAC-SHA256(secret, timestamp + "\n" + secret), URL-encoded once. */
    public static String token(String secret, String timestampMs) {
        byte[] digest = hmacSha256(secret, (timestampMs + "\n" + secret).getBytes(StandardCharsets.UTF_8));
        // Base64 uses only A-Z a-z 0-9 + / =; on those URLEncoder gives exactly Python's quote_plus
        // (+ -> %2B, / -> %2F, = -> %3D). They differ elsewhere ("~", "*"), which Base64 never contains.
        return URLEncoder.encode(Base64.getEncoder().encodeToString(digest), StandardCharsets.UTF_8);
    }

    /** One X-Apsdai-Signature-256 entry: "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body). */
    public static String bodySignature(String secret, String timestampMs, byte[] body) {
        byte[] prefix = (timestampMs + ".").getBytes(StandardCharsets.US_ASCII);
        byte[] message = new byte[prefix.length + body.length];
        System.arraycopy(prefix, 0, message, 0, prefix.length);
        System.arraycopy(body, 0, message, prefix.length, body.length);
        return "sha256=" + HexFormat.of().formatHex(hmacSha256(secret, message));
    }

    // Constant time (MessageDigest.isEqual), on the UTF-8 bytes as Python's hmac.compare_digest.
    private static boolean same(String a, String b) {
        return MessageDigest.isEqual(a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Check one request. `header` looks a header up by name, in any casing, and gives null when it is
     * absent: a servlet's request::getHeader. `body` is the raw bytes received, or null not to check
     * X-Apsdai-Signature-256. `previousSecret` ("" if none): during a rotation the old secret, accepted too.
     */
    public static Verification verify(Function<String, String> header, byte[] body, String mode, String secret,
                                      String previousSecret, long toleranceS, long nowMs) {
        if (!mode.equals("signature") && !mode.equals("password")) {
            throw new IllegalArgumentException("mode must be signature or password, not " + mode);
        }
        if (secret == null || secret.isEmpty()) {
            return new Verification(false, "no secret configured on the receiver");  // "" would match ""
        }
        List<String> secrets = new ArrayList<>(List.of(secret));
        if (previousSecret != null && !previousSecret.isEmpty()) secrets.add(previousSecret);
        String token = header.apply("X-Apsdai-Token");
        String timestamp = header.apply("X-Apsdai-Timestamp");
        if (token == null || token.isEmpty()) return new Verification(false, "missing X-Apsdai-Token header");

        if (mode.equals("password")) {
            // The timestamp is not signed in this mode: its age proves nothing, only its format is checked.
            if (timestamp != null && !TIMESTAMP.matcher(timestamp).matches()) {
                return new Verification(false, "X-Apsdai-Timestamp is not epoch milliseconds (digits only)");
            }
            if (secrets.stream().noneMatch(s -> same(token, s))) return new Verification(false, "password does not match");
            return verifyBody(header, secrets, timestamp, body);
        }
        if (timestamp == null || timestamp.isEmpty()) return new Verification(false, "missing X-Apsdai-Timestamp header");
        if (!TIMESTAMP.matcher(timestamp).matches()) {
            return new Verification(false, "X-Apsdai-Timestamp is not epoch milliseconds (digits only)");
        }
        long skewMs = nowMs - Long.parseLong(timestamp);
        if (Math.abs(skewMs) > toleranceS * 1000) {
            long seconds = (Math.abs(skewMs) + 999) / 1000;  // round up: 300.2 s never reads as "300 s"
            String direction = skewMs > 0 ? "old" : "in the future";
            return new Verification(false, "timestamp is " + seconds + " s " + direction + " (tolerance " + toleranceS + " s)");
        }
        if (secrets.stream().noneMatch(s -> same(token, token(s, timestamp)))) {
            return new Verification(false, "signature does not match: check the secret");
        }
        return verifyBody(header, secrets, timestamp, body);
    }

    private static Verification verifyBody(Function<String, String> header, List<String> secrets, String timestamp,
                                           byte[] body) {
        String sent = header.apply("X-Apsdai-Signature-256");
        if (sent == null || body == null) return new Verification(true, "");  // the seed's senders do not sign the body
        if (timestamp == null || !TIMESTAMP.matcher(timestamp).matches()) {
            return new Verification(false, "X-Apsdai-Signature-256 needs X-Apsdai-Timestamp");
        }
        // "sha256=<new>, sha256=<old>" during a rotation: any entry may match any of our secrets.
        for (String part : sent.split(",", -1)) {
            for (String s : secrets) {
                if (same(strip(part), bodySignature(s, timestamp, body))) return new Verification(true, "");
            }
        }
        return new Verification(false, "body signature does not match: the body was altered, or check the secret");
    }

    // ---- the command line ----

    /** Reads a request file: headers (names in any casing; repeated ones joined with ", ") and the body. */
    private static Verification verifyFile(String file, String mode, String secret, String previousSecret, long nowMs)
            throws IOException {
        byte[] raw = file.equals("-") ? System.in.readAllBytes() : Files.readAllBytes(Path.of(file));
        // ISO-8859-1 maps each byte to one char, as HTTP servers decode header values.
        String text = new String(raw, StandardCharsets.ISO_8859_1);
        int crlf = text.indexOf("\r\n\r\n"), lf = text.indexOf("\n\n");
        int end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
        int bodyStart = end < 0 ? raw.length : end + (end == crlf ? 4 : 2);
        String head = end < 0 ? text : text.substring(0, end);
        Map<String, String> headers = new HashMap<>();
        String[] lines = head.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].endsWith("\r") ? lines[i].substring(0, lines[i].length() - 1) : lines[i];
            int colon = line.indexOf(':');
            if (colon <= 0 || line.substring(0, colon).contains(" ")) continue;  // the request line, or not a header
            String name = line.substring(0, colon).toLowerCase(), value = strip(line.substring(colon + 1));
            headers.merge(name, value, (a, b) -> a + ", " + b);
        }
        byte[] body = java.util.Arrays.copyOfRange(raw, bodyStart, raw.length);
        return verify(name -> headers.get(name.toLowerCase()), body, mode, secret, previousSecret, 300, nowMs);
    }

    public static void main(String[] args) throws IOException {
        if (args.length >= 3 && args[0].equals("sign") && args.length % 2 == 1) {
            for (int i = 1; i < args.length; i += 2) System.out.println(token(args[i], args[i + 1]));
            return;
        }
        if (args.length >= 5 && args[0].equals("verify")) {
            String now = System.getenv("APSDAI_NOW_MS");
            long nowMs = now != null && !now.isEmpty() ? Long.parseLong(now) : System.currentTimeMillis();
            boolean allOk = true;
            for (int i = 4; i < args.length; i++) {
                Verification v = verifyFile(args[i], args[1], args[2], args[3], nowMs);
                System.out.println(v.ok() ? "ok" : "refused: " + v.reason());
                allOk &= v.ok();
            }
            System.exit(allOk ? 0 : 1);
        }
        System.err.println("usage: sign SECRET TIMESTAMP_MS [SECRET TIMESTAMP_MS ...]\n"
                + "       verify signature|password SECRET PREVIOUS_SECRET FILE...");
        System.exit(2);
    }
}
