// The SDK against the live server, as a frontend would use it: signup, confirm the address
// from the emailed link, login, me, refresh, TOTP (enroll, confirm, the second login step),
// logout. Every call is one of the SDK's typed functions and every answer is checked through
// its generated type: no `as`, no `any`. A failure names the step, the status and the problem.
//
// Run by scripts/sdk-e2e.sh (make sdk-e2e), which starts the server and an SMTP sink:
//   SDK_E2E_ORIGIN   the server's origin (http://127.0.0.1:PORT); the root path comes from the SDK
//   SDK_E2E_MAILDIR  the maildir the SMTP sink writes every received message into
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import {
  client,
  confirmTotp,
  enrollTotp,
  getMe,
  loginForAuthToken,
  logoutUser,
  refreshJwtToken,
  signupUser,
  verifyTotp,
  verifyUser,
  type Problem,
  type TokenResponse,
} from '../src/index.js';

const origin = requiredEnv('SDK_E2E_ORIGIN');
const maildir = requiredEnv('SDK_E2E_MAILDIR');
// The generated client's base URL is the document's server (the root path, `/api`).
client.setConfig({ baseUrl: new URL(client.getConfig().baseUrl ?? '/', origin).href });

// What every SDK call answers when it is not told to throw (hey-api's `fields` style).
type Outcome<T, E> = ({ data: T; error: undefined } | { data: undefined; error: E }) & {
  request: Request;
  response: Response;
};

class StepFailed extends Error {}

function fail(step: string, message: string): never {
  throw new StepFailed(`step "${step}": ${message}`);
}

function check(condition: boolean, step: string, message: string): asserts condition {
  if (!condition) fail(step, message);
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new StepFailed(`${name} is not set (scripts/sdk-e2e.sh sets it)`);
  }
  return value;
}

function present<T>(value: T | null | undefined, step: string, what: string): T {
  if (value === null || value === undefined) fail(step, `${what} is missing`);
  return value;
}

/** The typed body of a call that must succeed with `status`. */
async function expectOk<T, E extends Problem>(step: string, status: number, call: Promise<Outcome<T, E>>): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined) {
    fail(step, `answered ${response.status}, expected ${status}: ${JSON.stringify(error)}`);
  }
  // hey-api answers `{}` for a 204, so a success always has its data.
  if (data === undefined) fail(step, `answered ${response.status} without data`);
  check(response.status === status, step, `answered ${response.status}, expected ${status}`);
  console.log(`[sdk-e2e] ok: ${step} (${status})`);
  return data;
}

/** The typed problem of a call that must fail with `status` and `code`. */
async function expectProblem<T, E extends Problem>(
  step: string,
  status: number,
  code: string,
  call: Promise<Outcome<T, E>>,
): Promise<E> {
  const outcome = await call;
  if (outcome.error === undefined) {
    fail(step, `answered ${outcome.response.status}, expected ${status} ${code}: ${JSON.stringify(outcome.data)}`);
  }
  const problem = outcome.error;
  check(
    outcome.response.status === status && problem.status === status && problem.code === code,
    step,
    `answered ${outcome.response.status} ${JSON.stringify(problem)}, expected ${status} ${code}`,
  );
  check(
    outcome.response.headers.get('content-type') === 'application/problem+json',
    step,
    `the problem came as ${outcome.response.headers.get('content-type')}`,
  );
  console.log(`[sdk-e2e] ok: ${step} (${status} ${code})`);
  return problem;
}

function tokens(step: string, answer: TokenResponse): { access: string; refresh: string } {
  check(answer.token_type === 'bearer', step, `token_type is ${answer.token_type}`);
  check(answer.expires_in > 0, step, `expires_in is ${answer.expires_in}`);
  return {
    access: present(answer.access_token, step, 'access_token'),
    refresh: present(answer.refresh_token, step, 'refresh_token'),
  };
}

/** Undoes quoted-printable (soft line breaks and `=XX`), which the mailer uses for long lines. */
function decodeQuotedPrintable(raw: string): string {
  const joined = raw.replace(/=\r?\n/g, '');
  return Buffer.from(
    joined.replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    'latin1',
  ).toString('utf8');
}

/** The token of the `<page>?token=` link in the first message to `to`, waiting for it. */
async function linkToken(step: string, to: string, page: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  const link = new RegExp(`/${page}\\?token=([A-Za-z0-9_-]+)`);
  for (;;) {
    let names: string[] = [];
    try {
      names = readdirSync(join(maildir, 'new'));
    } catch {
      // The sink creates the folder with its first message.
    }
    for (const name of names) {
      const message = decodeQuotedPrintable(readFileSync(join(maildir, 'new', name), 'utf8'));
      const token = link.exec(message)?.[1];
      if (message.includes(to) && token !== undefined) {
        console.log(`[sdk-e2e] ok: ${step} (the ${page} link arrived by SMTP)`);
        return token;
      }
    }
    check(Date.now() < deadline, step, `no email to ${to} with a ${page} link within 30 s in ${maildir}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function base32Decode(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of text.replace(/=+$/, '').toUpperCase()) {
    const value = alphabet.indexOf(char);
    if (value < 0) throw new StepFailed(`not base32: ${text}`);
    bits += value.toString(2).padStart(5, '0');
  }
  const bytes: number[] = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The current code of an `otpauth://totp/` URI (RFC 6238 over RFC 4226), with node:crypto. */
function totpNow(step: string, otpauthUri: string): string {
  const uri = new URL(otpauthUri);
  check(uri.protocol === 'otpauth:' && uri.host === 'totp', step, `not a TOTP URI: ${otpauthUri}`);
  const secret = present(uri.searchParams.get('secret'), step, 'the URI secret');
  const algorithm = (uri.searchParams.get('algorithm') ?? 'SHA1').toLowerCase();
  const digits = Number(uri.searchParams.get('digits') ?? '6');
  const period = Number(uri.searchParams.get('period') ?? '30');
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / period)));
  const mac = createHmac(algorithm, base32Decode(secret)).update(counter).digest();
  const offset = present(mac[mac.length - 1], step, 'the HMAC') & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

async function main(): Promise<void> {
  const email = `sdk-e2e-${randomBytes(6).toString('hex')}@example.com`;
  const password = `sdk-e2e-${randomBytes(12).toString('base64url')}`;

  const accepted = await expectOk('signup', 202, signupUser({ body: { email, password, fullName: 'SDK E2E' } }));
  check(accepted.message.length > 0, 'signup', 'the answer has no message');

  const token = await linkToken('verification email', email, 'verify-email');
  const verified = await expectOk('confirm the address', 200, verifyUser({ body: { token, password } }));
  check(verified.email === email && verified.emailVerified, 'confirm the address', JSON.stringify(verified));

  const login = tokens('login', await expectOk('login', 200, loginForAuthToken({ body: { email, password } })));

  const me = await expectOk('me', 200, getMe({ auth: login.access }));
  check(me.id === verified.id && me.email === email, 'me', JSON.stringify(me));
  check(me.fullName === 'SDK E2E' && !me.isAdmin && !me.totpEnabled, 'me', JSON.stringify(me));

  const refreshed = tokens(
    'refresh',
    await expectOk('refresh', 200, refreshJwtToken({ body: { refreshToken: login.refresh } })),
  );
  check(refreshed.refresh !== login.refresh, 'refresh', 'the refresh token was not rotated');
  const meAgain = await expectOk('me with the refreshed token', 200, getMe({ auth: refreshed.access }));
  check(meAgain.id === me.id, 'me with the refreshed token', JSON.stringify(meAgain));

  // TOTP changes credentials: a refreshed token is not enough, the login's own one is.
  await expectProblem('TOTP enroll with a refreshed token', 403, 'fresh-login-required', enrollTotp({ auth: refreshed.access }));
  const enrollment = await expectOk('TOTP enroll', 200, enrollTotp({ auth: login.access }));
  check(enrollment.otpauthUri.includes(`secret=${enrollment.secret}`), 'TOTP enroll', enrollment.otpauthUri);
  check(enrollment.qrSvg.includes('<svg'), 'TOTP enroll', 'qrSvg is not an SVG document');
  const confirmed = await expectOk(
    'TOTP confirm',
    200,
    confirmTotp({ auth: login.access, body: { code: totpNow('TOTP confirm', enrollment.otpauthUri) } }),
  );
  const recoveryCode = present(confirmed.recoveryCodes[0], 'TOTP confirm', 'a recovery code');
  const withTotp = await expectOk('me with TOTP on', 200, getMe({ auth: login.access }));
  check(withTotp.totpEnabled, 'me with TOTP on', JSON.stringify(withTotp));

  // The second factor now: the password alone answers 403 with the challenge's token. The code
  // just used for confirming works once per 30-second step, so a recovery code finishes.
  const refused = await expectProblem('login with TOTP on', 403, 'mfa-required', loginForAuthToken({ body: { email, password } }));
  const mfaToken = present('mfaToken' in refused ? refused.mfaToken : undefined, 'login with TOTP on', 'mfaToken');
  const second = tokens(
    'TOTP verify',
    await expectOk('TOTP verify', 200, verifyTotp({ body: { mfaToken, code: recoveryCode } })),
  );

  await expectOk('logout', 204, logoutUser({ auth: second.access }));
  await expectProblem('me after logout', 401, 'session-ended', getMe({ auth: second.access }));
  await expectProblem(
    'refresh after logout',
    401,
    'invalid-refresh-token',
    refreshJwtToken({ body: { refreshToken: second.refresh } }),
  );
  console.log('[sdk-e2e] every step passed');
}

main().catch((error: unknown) => {
  console.error(`[sdk-e2e] FAILED: ${error instanceof StepFailed ? error.message : String(error)}`);
  if (!(error instanceof StepFailed) && error instanceof Error && error.stack) console.error(error.stack);
  process.exit(1);
});
