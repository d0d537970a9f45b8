/**
 * IP allowlist (contract section 3): IPv4 and IPv6 addresses and CIDR ranges, PHIA's published
 * addresses as named presets, and the client address behind trusted proxies (the right-most
 * untrusted `X-Forwarded-For` entry).
 */
import { BlockList, isIP } from 'node:net';

/** PHIA's source addresses [PHIA]. */
export const IP_PRESETS: Readonly<Record<string, readonly string[]>> = {
  'phia-staging': ['34.22.222.37'],
  'phia-production': ['104.155.124.243', '34.140.75.241'],
};

export interface IpRule {
  /** As written after preset expansion, e.g. `10.0.0.0/8`. */
  text: string;
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything else unchanged (lowercased). */
export function normalizeAddress(address: string): string {
  const lower = address.trim().toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(lower);
  if (mapped && isIP(mapped[1] as string) === 4) return mapped[1] as string;
  // Zone ids (fe80::1%eth0) are not part of an allowlist match.
  const zone = lower.indexOf('%');
  return zone >= 0 ? lower.slice(0, zone) : lower;
}

/**
 * Parses one allowlist entry. Returns the rule, or a string describing the problem.
 * Accepts `1.2.3.4`, `1.2.3.0/24`, `2001:db8::1`, `2001:db8::/32`.
 */
export function parseIpRule(entry: string): IpRule | string {
  const text = entry.trim();
  const slash = text.indexOf('/');
  const address = normalizeAddress(slash >= 0 ? text.slice(0, slash) : text);
  const version = isIP(address);
  if (version === 0) return `"${text}" is not an IP address or CIDR range`;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const bits = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(bits) || Number(bits) > max) return `"${text}" has a bad prefix length (0-${max})`;
    prefix = Number(bits);
  }
  return { text: prefix === max ? address : `${address}/${prefix}`, address, prefix, family };
}

/**
 * Expands presets and parses a comma-separated list. `*` means every address (IPv4 and IPv6).
 * Problems are collected, not thrown, so configuration can report them all at once.
 */
export function parseIpList(spec: string, problems: string[], what: string): IpRule[] {
  const rules: IpRule[] = [];
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const preset = IP_PRESETS[entry];
    const items = preset ?? (entry === '*' ? ['0.0.0.0/0', '::/0'] : [entry]);
    for (const item of items) {
      const rule = parseIpRule(item);
      if (typeof rule === 'string') problems.push(`${what}: ${rule}`);
      else rules.push(rule);
    }
  }
  return rules;
}

/** Prefix lengths below these are too wide for production without PHIA_ALLOW_WIDE_RANGES. */
export const WIDEST_PREFIX = { ipv4: 8, ipv6: 32 } as const;

// The allowlist's BlockList matches IPv4 clients against IPv4-mapped IPv6 rules (::ffff:0:0/96).
const IPV4_MAPPED = new BlockList();
IPV4_MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/** The rule's family and prefix as it matches: an IPv4-mapped IPv6 range counts as the IPv4 range. */
function effectivePrefix(rule: IpRule): { family: 'ipv4' | 'ipv6'; prefix: number } {
  if (rule.family === 'ipv6' && rule.prefix >= 96 && IPV4_MAPPED.check(rule.address, 'ipv6')) {
    return { family: 'ipv4', prefix: rule.prefix - 96 };
  }
  return { family: rule.family, prefix: rule.prefix };
}

/** True when a rule covers every address of its family (`0.0.0.0/0`, `::/0`, `::ffff:0:0/96`). */
export function isWildcard(rule: IpRule): boolean {
  return effectivePrefix(rule).prefix === 0;
}

/** True when a rule is wider than /8 (IPv4) or /32 (IPv6): `0.0.0.0/1` is half of every address. */
export function isWide(rule: IpRule): boolean {
  const { family, prefix } = effectivePrefix(rule);
  return prefix < WIDEST_PREFIX[family];
}

export class IpMatcher {
  readonly #list = new BlockList();
  readonly rules: readonly IpRule[];

  constructor(rules: readonly IpRule[]) {
    this.rules = rules;
    for (const rule of rules) this.#list.addSubnet(rule.address, rule.prefix, rule.family);
  }

  get size(): number {
    return this.rules.length;
  }

  has(address: string | undefined): boolean {
    if (address === undefined) return false;
    const normalized = normalizeAddress(address);
    const version = isIP(normalized);
    if (version === 0) return false;
    return this.#list.check(normalized, version === 4 ? 'ipv4' : 'ipv6');
  }
}

/**
 * The address that counts for the allowlist: the socket peer, unless the peer is a trusted proxy;
 * then the right-most `X-Forwarded-For` entry that is not itself a trusted proxy. If every entry is
 * trusted, the left-most one. A malformed entry counts as the client (and matches nothing).
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: IpMatcher,
): string | undefined {
  const peerAddress = peer === undefined ? undefined : normalizeAddress(peer);
  if (trusted.size === 0 || !trusted.has(peerAddress) || forwardedFor === undefined) return peerAddress;
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  const hops = header
    .split(',')
    .map((hop) => hop.trim())
    .filter((hop) => hop !== '');
  if (hops.length === 0) return peerAddress;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalizeAddress(stripPort(hops[i] as string));
    if (!trusted.has(hop)) return hop;
  }
  return normalizeAddress(stripPort(hops[0] as string));
}

/** `1.2.3.4:5678` → `1.2.3.4`; `[2001:db8::1]:443` → `2001:db8::1`. */
function stripPort(hop: string): string {
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracket) return bracket[1] as string;
  const v4port = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(hop);
  if (v4port) return v4port[1] as string;
  return hop;
}
