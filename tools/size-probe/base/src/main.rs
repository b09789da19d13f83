fn main() {
    let idx: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    println!("{idx}");
}
