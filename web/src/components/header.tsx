import { Link, useLocation } from "../router.tsx";
import { useLiveState, type LiveStatus } from "../live.tsx";
import { useThemeChoice, type ThemeChoice } from "../theme.ts";

const NEXT_THEME: Record<ThemeChoice, ThemeChoice> = {
  system: "light",
  light: "dark",
  dark: "system",
};

const LIVE_LABEL: Record<LiveStatus, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
};

/** Pages in the navigation. */
const PAGES = [
  { to: "/", label: "Overview", matches: (path: string) => path === "/" },
  { to: "/nodes", label: "Nodes", matches: (path: string) => path.startsWith("/nodes") },
  {
    to: "/clusters",
    label: "Clusters",
    matches: (path: string) => path.startsWith("/clusters"),
  },
  { to: "/prices", label: "Prices", matches: (path: string) => path.startsWith("/prices") },
  { to: "/regions", label: "Regions", matches: (path: string) => path.startsWith("/regions") },
  { to: "/token", label: "Token", matches: (path: string) => path.startsWith("/token") },
];

export function Header() {
  const { pathname } = useLocation();
  const live = useLiveState();
  const [theme, setTheme] = useThemeChoice();
  return (
    <header className="site-header">
      <div className="site-header-inner">
        <Link to="/" className="brand">
          <img src="/favicon.svg" alt="" width="24" height="24" />
          Tandem <span className="brand-sub">Explorer</span>
        </Link>
        <nav aria-label="Main">
          <ul className="nav-list">
            {PAGES.map((page) => (
              <li key={page.to}>
                <Link to={page.to} aria-current={page.matches(pathname) ? "page" : undefined}>
                  {page.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="header-tools">
          <span className={`live live-${live.status}`} data-testid="live-status">
            <span className="live-dot" aria-hidden="true" />
            {LIVE_LABEL[live.status]}
          </span>
          <button
            type="button"
            className="button button-quiet"
            onClick={() => setTheme(NEXT_THEME[theme])}
            aria-label={`Theme: ${theme}. Switch to ${NEXT_THEME[theme]}.`}
            title={`Theme: ${theme}`}
          >
            {theme === "system" ? "◐ System" : theme === "light" ? "☀ Light" : "☾ Dark"}
          </button>
        </div>
      </div>
    </header>
  );
}
