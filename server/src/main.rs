fn main() {
    println!("petrel {}", env!("CARGO_PKG_VERSION"));
}
