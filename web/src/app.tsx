import { useEffect, useRef } from "react";
import { Header } from "./components/header.tsx";
import { LiveProvider } from "./live.tsx";
import { ClusterPage } from "./pages/cluster.tsx";
import { ClustersPage } from "./pages/clusters.tsx";
import { NodePage } from "./pages/node.tsx";
import { NodesPage } from "./pages/nodes.tsx";
import { OverviewPage } from "./pages/overview.tsx";
import { PricesPage } from "./pages/prices.tsx";
import { RegionsPage } from "./pages/regions.tsx";
import { RewardBlockPage } from "./pages/reward-block.tsx";
import { TokenPage } from "./pages/token.tsx";
import { Link, useLocation } from "./router.tsx";

const NODE_PATH = /^\/nodes\/(node_[0-9a-z]{26})\/?$/;
const CLUSTER_PATH = /^\/clusters\/(clu_[0-9a-z]{26})\/?$/;
const BLOCK_PATH = /^\/token\/blocks\/(\d{1,9})\/?$/;

function Page({ pathname }: { pathname: string }) {
  if (pathname === "/") return <OverviewPage />;
  if (pathname === "/nodes" || pathname === "/nodes/") return <NodesPage />;
  const node = NODE_PATH.exec(pathname);
  if (node?.[1] !== undefined) return <NodePage key={node[1]} id={node[1]} />;
  if (pathname === "/clusters" || pathname === "/clusters/") return <ClustersPage />;
  if (pathname === "/prices" || pathname === "/prices/") return <PricesPage />;
  if (pathname === "/regions" || pathname === "/regions/") return <RegionsPage />;
  if (pathname === "/token" || pathname === "/token/") return <TokenPage />;
  const block = BLOCK_PATH.exec(pathname);
  if (block?.[1] !== undefined) return <RewardBlockPage key={block[1]} hour={Number(block[1])} />;
  const cluster = CLUSTER_PATH.exec(pathname);
  if (cluster?.[1] !== undefined) return <ClusterPage key={cluster[1]} id={cluster[1]} />;
  return (
    <>
      <h1 tabIndex={-1}>Page not found</h1>
      <p>
        There is no page at <code>{pathname}</code>. <Link to="/">Go to the overview</Link>.
      </p>
    </>
  );
}

const TITLES: Array<[RegExp, string]> = [
  [/^\/$/, "Overview"],
  [/^\/nodes\/?$/, "Nodes"],
  [NODE_PATH, "Node"],
  [/^\/clusters\/?$/, "Clusters"],
  [CLUSTER_PATH, "Cluster"],
  [/^\/prices\/?$/, "Prices"],
  [/^\/regions\/?$/, "Regions"],
  [/^\/token\/?$/, "Token"],
  [BLOCK_PATH, "Reward block"],
];

export function App() {
  const { pathname } = useLocation();
  const main = useRef<HTMLElement>(null);
  const firstRender = useRef(true);

  // After an in-app navigation, move focus to the new page's heading (as a page load would) and
  // name the page in the title, so keyboard and screen-reader users know where they are.
  useEffect(() => {
    const title = TITLES.find(([pattern]) => pattern.test(pathname))?.[1] ?? "Not found";
    document.title = `${title} · Tandem Explorer`;
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    main.current?.querySelector<HTMLElement>("h1")?.focus();
    window.scrollTo(0, 0);
  }, [pathname]);

  return (
    <LiveProvider>
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <Header />
      <main id="main" ref={main} tabIndex={-1}>
        <Page pathname={pathname} />
      </main>
      <footer className="site-footer">
        Public data from this coordinator's API: <a href="/v1/openapi.json">OpenAPI</a> ·{" "}
        <a href="/v1/network/stats">network stats</a>
      </footer>
    </LiveProvider>
  );
}
