mod archive;
mod reliability;
