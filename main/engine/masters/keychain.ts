// Passwords and key passphrases the user asked Hitch to remember live in the OS keychain
// (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows), never in our
// own files. When there is no usable keychain, Hitch still works: it asks each time.
import { AsyncEntry, type EntryOptions } from '@napi-rs/keyring';
import { HitchError } from '../errors';

export type KeychainStatus = { ok: true } | { ok: false; reason: string };

export interface SecretStore {
  /** Whether secrets can be stored here, with a clear sentence for the user when not. */
  status(): Promise<KeychainStatus>;
  get(account: string): Promise<string | null>;
  set(account: string, secret: string): Promise<void>;
  /** Resolves false when there was nothing to delete. */
  delete(account: string): Promise<boolean>;
}

/** A keychain failure, as one sentence a user can act on. Never contains the secret. */
export class KeychainError extends HitchError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('keychain', message, options);
    this.name = 'KeychainError';
  }
}

/** The keychain account a secret is filed under, e.g. "password:alice@web1:22". */
export function secretAccount(kind: 'password' | 'passphrase', subject: string): string {
  return `${kind}:${subject}`;
}

// On Linux, pin the Secret Service. Left to choose, the library falls back to the kernel
// keyutils store when the Secret Service is missing, and that fails on the first call of a
// process (AccessDenied) and does not survive a reboot anyway. The option is ignored on
// other platforms.
const ENTRY_OPTIONS: EntryOptions = { linux: { store: 'secret-service' } };

// status() writes and deletes this entry: only a write shows whether secrets can be stored
// (reading a missing entry succeeds even when the keyring is locked).
const PROBE_ACCOUNT = 'keychain-check';
const PROBE_VALUE = 'Hitch checks that it can store secrets here';
const ASKS_EACH_TIME = 'Hitch will ask for passwords each time instead of remembering them.';

export function osKeychain(service = 'Hitch'): SecretStore {
  // The entry's constructor opens a Secret Service session synchronously (~7 ms measured, and
  // it waits for a bus that accepts but never answers); only the operations run off the main
  // thread. A fresh entry per call keeps a restarted keyring daemon from leaving us with a
  // dead connection.
  const entry = (account: string): AsyncEntry => new AsyncEntry(service, account, ENTRY_OPTIONS);

  return {
    async status() {
      try {
        const probe = entry(PROBE_ACCOUNT);
        await probe.setPassword(PROBE_VALUE);
        await probe.deletePassword();
        return { ok: true };
      } catch (err) {
        return { ok: false, reason: `${problem(messageOf(err))}: ${ASKS_EACH_TIME}` };
      }
    },

    async get(account) {
      try {
        return await entry(account).getPassword();
      } catch (err) {
        throw failure(err, `read the saved ${describe(account)}`);
      }
    },

    async set(account, secret) {
      try {
        await entry(account).setPassword(secret);
      } catch (err) {
        throw failure(err, `save the ${describe(account)}`, secret);
      }
    },

    async delete(account) {
      try {
        return await entry(account).deletePassword();
      } catch (err) {
        throw failure(err, `remove the saved ${describe(account)}`);
      }
    },
  };
}

function failure(err: unknown, doing: string, secret?: string): KeychainError {
  // The library's text goes along as the cause, for diagnosis; scrubbed of the secret in case
  // a store ever echoes it back.
  let detail = messageOf(err);
  if (secret) detail = detail.split(secret).join('[secret]');
  return new KeychainError(`${problem(detail)}, so Hitch cannot ${doing}.`, { cause: new Error(detail) });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** "password for alice@web1:22" from "password:alice@web1:22". */
function describe(account: string): string {
  const m = /^(password|passphrase):(.+)$/.exec(account);
  return m ? `${m[1]} for ${m[2]}` : `secret "${account}"`;
}

// What the library's errors mean, from its messages (they carry no structured code; all are
// "GenericFailure"). Seen with @napi-rs/keyring 2.1 on Linux:
//   Platform failure: DBus error: Failed to connect to socket /run/...: No such file or directory
//   Platform failure: DBus error: Using X11 for dbus-daemon autolaunch was disabled at compile
//     time, set your DBUS_SESSION_BUS_ADDRESS instead
//   Platform failure: DBus error: The name org.freedesktop.secrets was not provided by any .service files
//   Couldn't access platform storage: Secret Service: unlock prompt was dismissed
//   Couldn't access platform storage: Secret Service: no result found   (no default keyring)
function problem(text: string): string {
  if (/Failed to connect to socket|autolaunch|DBUS_SESSION_BUS_ADDRESS/i.test(text)) {
    return 'No OS keychain is available (no D-Bus session bus)';
  }
  if (/org\.freedesktop\.secrets|ServiceUnknown|NameHasNoOwner/i.test(text)) {
    return 'No OS keychain is available (no Secret Service on the D-Bus session bus)';
  }
  if (/unlock prompt was dismissed|\blocked\b/i.test(text)) {
    return 'The OS keychain is locked';
  }
  if (/Secret Service: no result found/i.test(text)) {
    return 'The OS keychain has no default keyring to keep secrets in';
  }
  return `The OS keychain failed (${text})`;
}
