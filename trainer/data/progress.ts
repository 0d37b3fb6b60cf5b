/** A small progress bar on stderr: redrawn in place on a terminal, a few milestone lines otherwise. */
export class Progress {
  private last = -1;
  private readonly tty: boolean;
  constructor(
    private readonly label: string,
    private total: number,
    private readonly enabled = true,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(stream.isTTY);
  }
  update(done: number, note = ''): void {
    if (!this.enabled || this.total <= 0) return;
    const frac = Math.min(1, done / this.total);
    const width = 28;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '-');
    const line = `${this.label.padEnd(8)} [${bar}] ${done}/${this.total}${note ? ` ${note}` : ''}`;
    if (this.tty) {
      this.stream.write(`\r${line.slice(0, (this.stream.columns || 100) - 1).padEnd(Math.min(99, (this.stream.columns || 100) - 1))}`);
      if (done >= this.total) this.stream.write('\n');
    } else {
      const q = Math.floor(frac * 4);
      if (q !== this.last) {
        this.last = q;
        this.stream.write(`${line}\n`);
      }
    }
  }
}
