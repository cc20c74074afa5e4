import type { AuthPolicy, ClusterRoute } from '../config/types';
import { BasicAuthenticator } from './basic';
import { ExternalAuthenticator } from './external';
import { JwtAuthenticator } from './jwt';
import type { Authenticator } from './outcome';

/** The authenticator of a route's `auth` section. */
export function authenticatorFor(policy: AuthPolicy, routeName: string): Authenticator {
  switch (policy.kind) {
    case 'jwt':
      return new JwtAuthenticator(policy, routeName);
    case 'basic':
      return new BasicAuthenticator(policy);
    case 'external':
      return new ExternalAuthenticator(policy);
  }
}

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
