/** `::ffff:10.0.0.1` → `10.0.0.1`; other addresses unchanged. */
export function normalizePeerAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
