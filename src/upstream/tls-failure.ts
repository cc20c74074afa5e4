/**
 * Why a TLS handshake with an upstream failed, in words an operator can act on. Node reports
 * certificate verification failures with OpenSSL's X509 codes (CERT_HAS_EXPIRED, ...), the name
 * check with ERR_TLS_CERT_ALTNAME_INVALID, and alerts the peer sent with ERR_SSL_*_ALERT_*.
 */

const VERIFY_REASONS: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: 'the upstream certificate has expired',
  CERT_NOT_YET_VALID: 'the upstream certificate is not yet valid',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the upstream certificate is signed by an unknown CA (set clusters[].tls.ca to its CA)',
  UNABLE_TO_GET_ISSUER_CERT: 'the upstream certificate is signed by an unknown CA (set clusters[].tls.ca to its CA)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the upstream certificate is signed by an unknown CA (set clusters[].tls.ca to its CA)',
  SELF_SIGNED_CERT_IN_CHAIN: 'the upstream certificate chain ends in an unknown CA (set clusters[].tls.ca to its CA)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the upstream certificate is self-signed and not trusted (set clusters[].tls.ca to it)',
  CERT_SIGNATURE_FAILURE: 'the upstream certificate signature is invalid',
  CERT_REVOKED: 'the upstream certificate is revoked',
  CERT_UNTRUSTED: 'the upstream certificate is not trusted',
  CERT_CHAIN_TOO_LONG: 'the upstream certificate chain is too long',
  INVALID_CA: 'the upstream certificate chain contains an invalid CA certificate',
};

/** The reason of a TLS failure, or undefined when `code` is not one. */
export function upstreamTlsFailureReason(code: string, error: unknown): string | undefined {
  const verify = VERIFY_REASONS[code];
  if (verify !== undefined) return verify;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const reason = (error as { reason?: unknown }).reason;
    return `name mismatch: ${typeof reason === 'string' ? reason : "the upstream certificate does not cover the verified name"} (set clusters[].tls.serverName to a name it covers)`;
  }
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') {
    return 'the upstream requires a client certificate (set clusters[].tls.cert and key)';
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    const text = error instanceof Error ? error.message : code;
    if (/alert (bad certificate|unknown ca|certificate unknown|handshake failure)/i.test(text) || /ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN)/.test(code)) {
      return `the upstream refused the handshake (${code}): check clusters[].tls.cert and key against the CA it trusts`;
    }
    return `TLS handshake failed (${code})`;
  }
  return undefined;
}
