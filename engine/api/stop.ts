// Stop strings for streaming text: text is released only once it can no longer be the start
// of a stop string, and generation ends at the first full stop-string match (the stop string
// itself is not returned — OpenAI semantics).

export class StopMatcher {
  private pending = '';
  private readonly stops: string[];
  /** Set once a stop string has matched. */
  stopped = false;

  constructor(stops: ReadonlyArray<string>) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /**
   * Feeds newly decoded text; returns the text that is now safe to emit (never part of a
   * stop string). After a match, returns the text before it and sets `stopped`.
   */
  push(text: string): string {
    if (this.stopped) return '';
    this.pending += text;
    if (this.stops.length === 0) {
      const out = this.pending;
      this.pending = '';
      return out;
    }
    // Earliest full match wins.
    let cut = -1;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      const out = this.pending.slice(0, cut);
      this.pending = '';
      this.stopped = true;
      return out;
    }
    // Hold back the longest suffix of pending that is a proper prefix of some stop string.
    let hold = 0;
    for (const s of this.stops) {
      const max = Math.min(s.length - 1, this.pending.length);
      for (let n = max; n > hold; n--) {
        if (this.pending.endsWith(s.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    const out = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return out;
  }

  /** End of generation without a match: whatever was held back is real text. */
  flush(): string {
    if (this.stopped) return '';
    const out = this.pending;
    this.pending = '';
    return out;
  }
}
