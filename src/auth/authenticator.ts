import type { AuthPolicy, ClusterRoute } from '../config/types';
import type { Authenticator } from './outcome';

/**
 * The authenticator of a route's `auth` section. Each kind's module is loaded when a route
 * first uses it: jose takes ~11 MB of RSS and bcryptjs hashes a password at load (~0.1 s of
 * CPU), which a sidecar without that kind of auth should not pay for.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
export function authenticatorFor(policy: AuthPolicy, routeName: string): Authenticator {
  switch (policy.kind) {
    case 'jwt': {
      const { JwtAuthenticator } = require('./jwt') as typeof import('./jwt');
      return new JwtAuthenticator(policy, routeName);
    }
    case 'basic': {
      const { BasicAuthenticator } = require('./basic') as typeof import('./basic');
      return new BasicAuthenticator(policy);
    }
    case 'external': {
      const { ExternalAuthenticator } = require('./external') as typeof import('./external');
      return new ExternalAuthenticator(policy);
    }
  }
}
/* eslint-enable @typescript-eslint/no-require-imports */

/** Routes are frozen parts of one config: one authenticator per route object, shared by its HTTP chain and its WebSocket upgrades. */
const byRoute = new WeakMap<ClusterRoute, Authenticator>();

/** The route's authenticator, or undefined when it has no `auth`. */
export function authenticatorOf(route: ClusterRoute): Authenticator | undefined {
  if (route.auth === undefined) return undefined;
  let authenticator = byRoute.get(route);
  if (authenticator === undefined) {
    authenticator = authenticatorFor(route.auth, route.name);
    byRoute.set(route, authenticator);
  }
  return authenticator;
}
