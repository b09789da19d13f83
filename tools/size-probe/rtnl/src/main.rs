use futures::TryStreamExt;
fn main() {
    let idx: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let (conn, handle, _) = rtnetlink::new_connection().unwrap();
        tokio::spawn(conn);
        let mut links = handle.link().get().execute();
        while let Ok(Some(l)) = links.try_next().await { println!("{}", l.header.index); }
        let _ = handle.link().set(idx).up().mtu(1500).execute().await;
        let _ = handle.address().add(idx, "10.0.0.5".parse().unwrap(), 24).execute().await;
        let _ = handle.route().add().v4().output_interface(idx).gateway("10.0.0.1".parse().unwrap()).execute().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {}).await;
    });
}
