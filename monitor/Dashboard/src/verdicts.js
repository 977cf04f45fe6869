// A verdict from the API becomes a CSS class only from this fixed list.
export function verdictClass(verdict) {
  return verdict === 'intrusion' || verdict === 'benign' || verdict === 'pending' ? verdict : 'unknown';
}
