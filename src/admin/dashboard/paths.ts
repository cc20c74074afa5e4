/** The dashboard's page and assets: readable without the admin token, since they hold no data (the page asks for the token). */
export const DASHBOARD_PATHS: ReadonlySet<string> = new Set(['/', '/assets/uplot.js', '/assets/uplot.css']);
