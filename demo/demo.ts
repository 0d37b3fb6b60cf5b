// What the chat page hands the simulator (sim.ts) and the fine-tune tab (tune.ts): the worker engine and the page's
// shared state and callbacks (its own file, so the tabs depend on it and not on main.ts).
import type { RouteDecision, WorkerEngine } from 'lorafleet';
import type { Router } from 'lorafleet/router';
import type { DomainInfo } from './tasks.ts';

export interface Demo {
  engine: WorkerEngine;
  base: string;
  domain: DomainInfo | null;
  router: Router | null;
  /** model "auto": the router's decision per request user turn, taken once in send() and read back by the engine's routeFn. */
  decided: Map<string, RouteDecision>;
  /** Adds a model to the chat's model picker. */
  addModel(name: string): void;
  refreshPool(): Promise<void>;
}
